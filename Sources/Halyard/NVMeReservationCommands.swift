import ArgumentParser
import NIOCore
import NVMe
import NVMeHost

/// `halyard nvme resv-register|resv-acquire|resv-release|resv-report`: NVMe reservations (NVMe
/// base spec 2.0 §7.3, §8.19) from the command line, with nvme-cli's option names where they do
/// not clash with the connection options (`-n` is the subsystem NQN here; the namespace is
/// `--namespace`). Each command is sent once, on one path, never replayed on another.
enum NVMeReservationCLI {
    /// Where reservation commands go: the one controller, or one path of the multipath device.
    static func sender(_ target: CLIBlockTarget) -> any ReservationCommandSender {
        switch target {
        case .single(let controller, _): controller
        case .multipath(let device, _): device
        }
    }

    /// Runs `body` against the subsystem's namespace; a command failure becomes a CLI error that
    /// names the NVMe status (e.g. Reservation Conflict).
    static func run<T: Sendable>(_ common: NVMeConnectionOptions, what: String,
                                 _ body: @escaping @Sendable (any ReservationCommandSender, UInt32) async throws -> T) async throws -> T {
        let nqn = try common.requireNQN()
        let session = try NVMeCLISession(common)
        return try await session.run { session in
            let target = try await CLIBlockTarget.open(session, common: common, nqn: nqn)
            do {
                return try await body(sender(target), target.namespace.nsid)
            } catch {
                throw CLIError("\(what) failed: \(describe(error))")
            }
        }
    }

    static func parseKey(_ text: String) -> UInt64? {
        let t = text.lowercased()
        return t.hasPrefix("0x") ? UInt64(t.dropFirst(2), radix: 16) : UInt64(t)
    }

    static func parseType(_ text: String) -> ReservationType? {
        if let n = UInt8(text) { return ReservationType(rawValue: n) }
        let names: [String: ReservationType] = [
            "write-exclusive": .writeExclusive, "exclusive-access": .exclusiveAccess,
            "write-exclusive-registrants-only": .writeExclusiveRegistrantsOnly,
            "exclusive-access-registrants-only": .exclusiveAccessRegistrantsOnly,
            "write-exclusive-all-registrants": .writeExclusiveAllRegistrants,
            "exclusive-access-all-registrants": .exclusiveAccessAllRegistrants,
        ]
        return names[text.lowercased()]
    }

    static let keyHelp = "decimal or 0x-hex"
    static let typeHelp = "1-6 or write-exclusive|exclusive-access|write-exclusive-registrants-only|exclusive-access-registrants-only|write-exclusive-all-registrants|exclusive-access-all-registrants"
}

/// `halyard nvme resv-register`.
struct NVMeReservationRegisterCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "resv-register",
        abstract: "Reservation Register: register a key, unregister, or replace the key.",
        discussion: """
              halyard nvme resv-register -a HOST -s PORT -n NQN --nrkey KEY [--rrega register|unregister|replace] \
            [--crkey KEY] [--iekey] [--cptpl no-change|clear|set]
            """)

    @OptionGroup var common: NVMeConnectionOptions

    @Option(name: [.customShort("c"), .customLong("crkey")], help: "Current reservation key (\(NVMeReservationCLI.keyHelp)).")
    var crkey = "0"
    @Option(name: [.customShort("k"), .customLong("nrkey")], help: "New reservation key (\(NVMeReservationCLI.keyHelp)).")
    var nrkey = "0"
    @Option(name: [.customShort("r"), .customLong("rrega")], help: "Action: 0|register, 1|unregister, 2|replace.")
    var rrega = "register"
    @Option(name: [.customShort("p"), .customLong("cptpl")], help: "Persist Through Power Loss: 0|no-change, 2|clear, 3|set.")
    var cptpl = "no-change"
    @Flag(name: [.customShort("i"), .customLong("iekey")], help: "Ignore the current key.")
    var iekey = false

    func run() async throws {
        let actions: [String: ReservationRegisterCommand.Action] = ["0": .register, "register": .register, "1": .unregister,
                                                                    "unregister": .unregister, "2": .replace, "replace": .replace]
        let persistences: [String: ReservationRegisterCommand.PersistenceChange] = ["0": .noChange, "no-change": .noChange, "2": .clear,
                                                                                    "clear": .clear, "3": .set, "set": .set]
        guard let action = actions[rrega.lowercased()] else { throw ValidationError("--rrega: register, unregister or replace (0, 1, 2)") }
        guard let persistence = persistences[cptpl.lowercased()] else { throw ValidationError("--cptpl: no-change, clear or set (0, 2, 3)") }
        guard let current = NVMeReservationCLI.parseKey(crkey) else { throw ValidationError("--crkey: \(NVMeReservationCLI.keyHelp)") }
        guard let new = NVMeReservationCLI.parseKey(nrkey) else { throw ValidationError("--nrkey: \(NVMeReservationCLI.keyHelp)") }
        let iekey = iekey
        try await runNVMeCommand(logLevel: common.logLevel) {
            try await NVMeReservationCLI.run(common, what: "reservation register") { sender, nsid in
                try await sender.reservationRegister(namespaceID: nsid, action: action, currentKey: current, newKey: new,
                                                     ignoreExistingKey: iekey, persistence: persistence)
            }
            writeStdout("resv-register: success\n")
        }
    }
}

/// `halyard nvme resv-acquire`.
struct NVMeReservationAcquireCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "resv-acquire",
        abstract: "Reservation Acquire: acquire, preempt, or preempt and abort.",
        discussion: """
              halyard nvme resv-acquire -a HOST -s PORT -n NQN --crkey KEY --rtype TYPE [--racqa acquire|preempt|preempt-abort] \
            [--prkey KEY] [--iekey]
            """)

    @OptionGroup var common: NVMeConnectionOptions

    @Option(name: [.customShort("c"), .customLong("crkey")], help: "Current reservation key (\(NVMeReservationCLI.keyHelp)).")
    var crkey = "0"
    @Option(name: [.customShort("p"), .customLong("prkey")], help: "Preempt reservation key (\(NVMeReservationCLI.keyHelp)).")
    var prkey = "0"
    @Option(name: [.customShort("t"), .customLong("rtype")], help: "Reservation type: \(NVMeReservationCLI.typeHelp).")
    var rtype: String
    @Option(name: .customLong("racqa"), help: "Action: 0|acquire, 1|preempt, 2|preempt-abort.")
    var racqa = "acquire"
    @Flag(name: [.customShort("i"), .customLong("iekey")], help: "Ignore the current key.")
    var iekey = false

    func run() async throws {
        let actions: [String: ReservationAcquireCommand.Action] = ["0": .acquire, "acquire": .acquire, "1": .preempt, "preempt": .preempt,
                                                                   "2": .preemptAndAbort, "preempt-abort": .preemptAndAbort]
        guard let action = actions[racqa.lowercased()] else { throw ValidationError("--racqa: acquire, preempt or preempt-abort (0, 1, 2)") }
        guard let type = NVMeReservationCLI.parseType(rtype) else { throw ValidationError("--rtype: \(NVMeReservationCLI.typeHelp)") }
        guard let current = NVMeReservationCLI.parseKey(crkey) else { throw ValidationError("--crkey: \(NVMeReservationCLI.keyHelp)") }
        guard let preempt = NVMeReservationCLI.parseKey(prkey) else { throw ValidationError("--prkey: \(NVMeReservationCLI.keyHelp)") }
        let iekey = iekey
        try await runNVMeCommand(logLevel: common.logLevel) {
            try await NVMeReservationCLI.run(common, what: "reservation acquire") { sender, nsid in
                try await sender.reservationAcquire(namespaceID: nsid, action: action, type: type, currentKey: current,
                                                    preemptKey: preempt, ignoreExistingKey: iekey)
            }
            writeStdout("resv-acquire: success\n")
        }
    }
}

/// `halyard nvme resv-release`.
struct NVMeReservationReleaseCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "resv-release",
        abstract: "Reservation Release: release the reservation, or clear every registration.",
        discussion: """
              halyard nvme resv-release -a HOST -s PORT -n NQN --crkey KEY --rtype TYPE [--rrela release|clear] [--iekey]
            """)

    @OptionGroup var common: NVMeConnectionOptions

    @Option(name: [.customShort("c"), .customLong("crkey")], help: "Current reservation key (\(NVMeReservationCLI.keyHelp)).")
    var crkey = "0"
    @Option(name: [.customShort("t"), .customLong("rtype")], help: "Reservation type: \(NVMeReservationCLI.typeHelp) (0 or omitted for clear).")
    var rtype: String?
    @Option(name: .customLong("rrela"), help: "Action: 0|release, 1|clear.")
    var rrela = "release"
    @Flag(name: [.customShort("i"), .customLong("iekey")], help: "Ignore the current key.")
    var iekey = false

    func run() async throws {
        let actions: [String: ReservationReleaseCommand.Action] = ["0": .release, "release": .release, "1": .clear, "clear": .clear]
        guard let action = actions[rrela.lowercased()] else { throw ValidationError("--rrela: release or clear (0, 1)") }
        var type: ReservationType?
        if let rtype, rtype != "0" {
            guard let t = NVMeReservationCLI.parseType(rtype) else { throw ValidationError("--rtype: \(NVMeReservationCLI.typeHelp)") }
            type = t
        }
        guard type != nil || action == .clear else { throw ValidationError("--rtype is required to release") }
        guard let current = NVMeReservationCLI.parseKey(crkey) else { throw ValidationError("--crkey: \(NVMeReservationCLI.keyHelp)") }
        let iekey = iekey
        let releaseType = type
        try await runNVMeCommand(logLevel: common.logLevel) {
            try await NVMeReservationCLI.run(common, what: "reservation release") { sender, nsid in
                try await sender.reservationRelease(namespaceID: nsid, action: action, type: releaseType, currentKey: current,
                                                    ignoreExistingKey: iekey)
            }
            writeStdout("resv-release: success\n")
        }
    }
}

/// `halyard nvme resv-report`.
struct NVMeReservationReportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "resv-report",
        abstract: "Reservation Report (extended data structure): generation, type, registrants and their keys.",
        discussion: """
              halyard nvme resv-report -a HOST -s PORT -n NQN [--json]
            """)

    @OptionGroup var common: NVMeConnectionOptions

    @Flag(help: "Print one JSON object.")
    var json = false

    struct Registrant: Encodable {
        var cntlid: UInt16
        var rcsts: UInt8
        var hostid: String
        var rkey: String
    }

    struct Output: Encodable {
        var gen: UInt32
        var rtype: UInt8
        var rtypeName: String
        var regctl: UInt16
        var ptpls: UInt8
        var registrants: [Registrant]

        enum CodingKeys: String, CodingKey {
            case gen, rtype, regctl, ptpls, registrants
            case rtypeName = "rtype_name"
        }
    }

    func run() async throws {
        try await runNVMeCommand(logLevel: common.logLevel) {
            let status = try await NVMeReservationCLI.run(common, what: "reservation report") { sender, nsid in
                try await sender.reservationReport(namespaceID: nsid)
            }
            let output = Output(
                gen: status.generation, rtype: status.rawType, rtypeName: status.type?.description ?? "none",
                regctl: status.registrantCount, ptpls: status.persistThroughPowerLoss ? 1 : 0,
                registrants: status.registrants.map {
                    Registrant(cntlid: $0.controllerID, rcsts: $0.holdsReservation ? 1 : 0, hostid: $0.hostID.description,
                               rkey: "0x" + String($0.key, radix: 16))
                })
            if json {
                try printJSON(output)
                return
            }
            var text = """
                NVME Reservation status:

                gen       : \(output.gen)
                rtype     : \(output.rtype) (\(output.rtypeName))
                regctl    : \(output.regctl)
                ptpls     : \(output.ptpls)

                """
            for (i, r) in output.registrants.enumerated() {
                text += """
                    regctlext[\(i)] :
                      cntlid     : \(String(r.cntlid, radix: 16))
                      rcsts      : \(r.rcsts)
                      hostid     : \(r.hostid)
                      rkey       : \(r.rkey)

                    """
            }
            writeStdout(text)
        }
    }
}
