import ArgumentParser
import Foundation
import Logging
import NIOCore
import NIOPosix
import NVMe
import NVMeHost

// Shared pieces of the `halyard nvme` subcommands: the connection option group, host identity
// resolution, connecting with one-line errors, output helpers.

/// Options every `halyard nvme` subcommand takes (nvme-cli's names where it has one).
struct NVMeConnectionOptions: ParsableArguments {
    @Option(name: [.customShort("a"), .customLong("traddr")],
            help: ArgumentHelp("Target address (repeatable; paired in order with -s: several paths to one subsystem).", valueName: "HOST"))
    var traddr: [String] = []

    @Option(name: [.customShort("s"), .customLong("trsvcid")],
            help: ArgumentHelp("Target TCP port (repeatable, paired with -a; one -s applies to every -a; default 4420, 8009 for discover and connect-all).",
                               valueName: "PORT"))
    var trsvcid: [Int] = []

    @Option(name: [.customShort("n"), .customLong("nqn")], help: ArgumentHelp("Subsystem NQN.", valueName: "NQN"))
    var nqn: String?

    @Option(help: ArgumentHelp("""
        Host NQN (default: /etc/nvme/hostnqn, else one generated once and kept in the state directory: \
        $HALYARD_STATE_DIR, $XDG_STATE_HOME/halyard or ~/.local/state/halyard; $HALYARD_NVME_ETC_DIR replaces /etc/nvme).
        """, valueName: "NQN"))
    var hostnqn: String?

    @Option(help: ArgumentHelp("Host identifier, a UUID (default: /etc/nvme/hostid, the UUID of a UUID-form host NQN, or the state directory's).",
                               valueName: "UUID"))
    var hostid: String?

    @Flag(name: .customLong("hdr-digest"), help: "Use the PDU header digest.")
    var headerDigest = false

    @Flag(name: .customLong("data-digest"), help: "Use the PDU data digest.")
    var dataDigest = false

    @Option(name: .customLong("nr-io-queues"), help: "Number of I/O queues to ask for.")
    var ioQueues: Int = 2

    @Option(name: .customLong("queue-size"), help: "Entries per I/O queue (clamped to the target's limit).")
    var queueSize: Int = 128

    @Option(name: .customLong("keep-alive-tmo"), help: ArgumentHelp("Keep Alive Timeout in seconds (0 disables).", valueName: "SECONDS"))
    var keepAliveTimeout: Int = 5

    @Option(name: .customLong("connect-timeout"), help: ArgumentHelp("TCP connect + ICResp timeout per queue, seconds.", valueName: "SECONDS"))
    var connectTimeout: Double = 10

    @Option(name: .customLong("io-timeout"), help: ArgumentHelp("Timeout of each I/O command, seconds.", valueName: "SECONDS"))
    var ioTimeout: Double = 30

    @Option(name: .customLong("reconnect-delay"),
            help: ArgumentHelp("Multipath read/write: seconds between reconnect attempts of a lost path.", valueName: "SECONDS"))
    var reconnectDelay: Double = 2

    @Option(name: .customLong("ctrl-loss-tmo"),
            help: ArgumentHelp("Multipath read/write: seconds a lost path keeps reconnecting before it is given up.", valueName: "SECONDS"))
    var controllerLossTimeout: Double = 30

    @Option(name: .customLong("fast-io-fail-tmo"),
            help: ArgumentHelp("Multipath read/write: seconds I/O may wait for a reconnecting path before it fails.", valueName: "SECONDS"))
    var fastIOFailTimeout: Double = 10

    @Option(name: .customLong("namespace"), help: ArgumentHelp("Namespace ID (default 1).", valueName: "NSID"))
    var namespace: UInt32?

    @Option(name: .customLong("log-level"), help: "Library log level on stderr: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "warning"

    /// The namespace the command works on.
    var nsid: UInt32 { namespace ?? 1 }

    func validate() throws {
        guard !traddr.isEmpty else { throw ValidationError("give the target address: -a/--traddr HOST") }
        guard trsvcid.isEmpty || trsvcid.count == 1 || trsvcid.count == traddr.count else {
            throw ValidationError("give one -s/--trsvcid per -a/--traddr (\(traddr.count) addresses, \(trsvcid.count) ports), or a single -s for all")
        }
        for port in trsvcid where !(1...65535).contains(port) {
            throw ValidationError("invalid port \(port): use 1-65535")
        }
        guard (1...64).contains(ioQueues) else { throw ValidationError("--nr-io-queues must be 1-64") }
        guard (2...4096).contains(queueSize) else { throw ValidationError("--queue-size must be 2-4096") }
        guard keepAliveTimeout >= 0 else { throw ValidationError("--keep-alive-tmo must be ≥ 0") }
        guard connectTimeout > 0, ioTimeout > 0, reconnectDelay > 0, controllerLossTimeout > 0, fastIOFailTimeout > 0 else {
            throw ValidationError("timeouts and delays must be > 0")
        }
        guard Set(paths(defaultPort: 4420)).count == traddr.count else { throw ValidationError("the same -a/-s path is given twice") }
        if let namespace, namespace == 0 || namespace == 0xFFFF_FFFF {
            throw ValidationError("--namespace must be a valid NSID (1-4294967294)")
        }
        if let hostid, NamespaceUUID(string: hostid) == nil {
            throw ValidationError("invalid --hostid '\(hostid)': expected a UUID like 0f0e0d0c-0b0a-4908-8706-050403020100")
        }
        if let hostnqn, !hostnqn.hasPrefix("nqn.") || hostnqn.utf8.count > 223 {
            throw ValidationError("invalid --hostnqn '\(hostnqn)': an NQN starts with 'nqn.' and has at most 223 bytes")
        }
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("unknown --log-level \(logLevel)") }
    }

    /// The paths (address, port) in the order given.
    func paths(defaultPort: Int) -> [TransportAddress] {
        traddr.enumerated().map { i, host in
            let port = trsvcid.isEmpty ? defaultPort : trsvcid.count == 1 ? trsvcid[0] : trsvcid[i]
            return TransportAddress(host: host, port: port)
        }
    }

    /// The subsystem NQN, required for everything but discovery.
    func requireNQN() throws -> String {
        guard let nqn, !nqn.isEmpty else { throw CLIError("give the subsystem NQN: -n/--nqn NQN") }
        return nqn
    }

    func controllerOptions() -> ControllerOptions {
        var options = ControllerOptions()
        options.headerDigest = headerDigest
        options.dataDigest = dataDigest
        options.ioQueueCount = ioQueues
        options.ioQueueDepth = queueSize
        options.keepAliveTimeout = .seconds(Int64(keepAliveTimeout))
        options.connectTimeout = .nanoseconds(Int64(connectTimeout * 1e9))
        options.ioTimeout = .nanoseconds(Int64(ioTimeout * 1e9))
        return options
    }

    func sessionOptions() -> ControllerSessionOptions {
        ControllerSessionOptions(reconnectDelay: .nanoseconds(Int64(reconnectDelay * 1e9)),
                                 controllerLossTimeout: .nanoseconds(Int64(controllerLossTimeout * 1e9)),
                                 fastIOFailTimeout: .nanoseconds(Int64(fastIOFailTimeout * 1e9)))
    }

    /// The host identity: `--hostnqn`/`--hostid` when given, else `HostIdentity.systemDefault`.
    /// `--hostnqn` alone takes its ID from a UUID-form NQN, else from the default identity;
    /// `--hostid` alone keeps the default NQN.
    func hostIdentity() throws -> HostIdentity {
        let overrideID = hostid.flatMap(NamespaceUUID.init(string:))?.bytes
        if let hostnqn, let overrideID { return HostIdentity(hostNQN: hostnqn, hostID: overrideID) }
        if let hostnqn, let range = hostnqn.range(of: ":uuid:"), let id = NamespaceUUID(string: String(hostnqn[range.upperBound...])) {
            return HostIdentity(hostNQN: hostnqn, hostID: id.bytes)
        }
        let base: HostIdentity
        do {
            base = try HostIdentity.systemDefault(stateDirectory: Self.stateDirectory(), etcDirectory: Self.etcDirectory())
        } catch {
            throw CLIError("cannot set up the host identity in \(Self.stateDirectory()): \(error.localizedDescription)")
        }
        return HostIdentity(hostNQN: hostnqn ?? base.hostNQN, hostID: overrideID ?? base.hostID)
    }

    /// `$HALYARD_STATE_DIR`, `$XDG_STATE_HOME/halyard` or `~/.local/state/halyard`.
    static func stateDirectory() -> String {
        let env = ProcessInfo.processInfo.environment
        if let dir = env["HALYARD_STATE_DIR"], !dir.isEmpty { return dir }
        if let xdg = env["XDG_STATE_HOME"], !xdg.isEmpty { return "\(xdg)/halyard" }
        let home = env["HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? FileManager.default.homeDirectoryForCurrentUser.path
        return "\(home)/.local/state/halyard"
    }

    /// nvme-cli's `/etc/nvme`, or `$HALYARD_NVME_ETC_DIR` (tests point it elsewhere).
    static func etcDirectory() -> String {
        if let dir = ProcessInfo.processInfo.environment["HALYARD_NVME_ETC_DIR"], !dir.isEmpty { return dir }
        return "/etc/nvme"
    }
}

/// A failure with the one line the operator sees after `error: `.
struct CLIError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Runs a subcommand body: any error becomes one `error: …` line on stderr and exit status 1.
func runNVMeCommand(logLevel: String, _ body: () async throws -> Void) async throws {
    let level = Logger.Level(rawValue: logLevel) ?? .warning
    LoggingSystem.bootstrap { label in
        var handler = StreamLogHandler.standardError(label: label)
        handler.logLevel = level
        return handler
    }
    do {
        try await body()
    } catch let exit as ExitCode {
        throw exit
    } catch {
        printError(describe(error))
        throw ExitCode.failure
    }
}

/// One line for an error: NVMeHost errors without their redundant prefixes, no newlines.
func describe(_ error: any Error) -> String {
    let text: String
    switch error {
    case let e as CLIError: text = e.description
    case let e as NVMeHostError:
        switch e {
        case .connectFailed(let why): text = why
        case .transportClosed(let why) where why.hasPrefix("cannot connect to "): text = connectFailure(why) ?? e.description
        default: text = e.description
        }
    case let e as MultipathError:
        switch e {
        case .noPathConnected(let errors): text = "no path connected: " + errors.map(shortenConnectErrors).joined(separator: "; ")
        default: text = e.description
        }
    case let e as SubsystemConnectionError: text = e.summary + ": " + describe(e.underlying)
    case let e as DiscoveryError: text = e.summary + ": " + describe(e.underlying)
    case let e as NVMeWireError: text = "malformed data from the target: \(e)"
    default: text = "\(error)"
    }
    return text.split(whereSeparator: \.isNewline).joined(separator: " ")
}

/// A few words for NVMeHost's text of a failed TCP connect ("cannot connect to ADDR: <NIO error>").
func connectFailure(_ why: String) -> String? {
    if why.contains("Connection refused") || why.contains("errno: 111") { return "TCP connection refused" }
    if why.contains("connectTimeout") || why.contains("timed out") || why.contains("errno: 110") { return "TCP connect timed out" }
    if let range = why.range(of: "DNS error: ") { return "cannot resolve the address: " + why[range.upperBound...] }
    return nil
}

/// `connectFailure` applied inside a longer message ("ADDR: transport closed: cannot connect to …").
func shortenConnectErrors(_ text: String) -> String {
    guard let range = text.range(of: "transport closed: cannot connect to "),
          let short = connectFailure(String(text[range.lowerBound...])) else { return text }
    return text[..<range.lowerBound] + short
}

func printError(_ line: String) {
    FileHandle.standardError.write(Data("error: \(line)\n".utf8))
}

func printWarning(_ line: String) {
    FileHandle.standardError.write(Data("warning: \(line)\n".utf8))
}

/// Writes `text` to stdout unbuffered (large outputs, mixed with stderr in order).
func writeStdout(_ text: String) {
    FileHandle.standardOutput.write(Data(text.utf8))
}

/// Prints an `Encodable` value as one pretty-printed JSON object.
func printJSON(_ value: some Encodable) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    var data = try encoder.encode(value)
    data.append(UInt8(ascii: "\n"))
    FileHandle.standardOutput.write(data)
}

/// An event loop group and the host identity for one CLI invocation; connects controllers with
/// errors that name the path.
final class NVMeCLISession {
    let group: MultiThreadedEventLoopGroup
    let identity: HostIdentity
    let options: ControllerOptions
    private var controllers: [NVMeController] = []
    private var devices: [MultipathDevice] = []
    private var subsystems: [SubsystemConnection] = []

    init(_ common: NVMeConnectionOptions, threads: Int = 1) throws {
        identity = try common.hostIdentity()
        options = common.controllerOptions()
        group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, threads))
    }

    /// Connects to `nqn` through `path`; the controller is shut down by `close()`.
    func connect(_ path: TransportAddress, nqn: String, options: ControllerOptions? = nil) async throws -> NVMeController {
        do {
            let controller = try await NVMeController.connect(to: path, subsystemNQN: nqn, identity: identity,
                                                              options: options ?? self.options, group: group,
                                                              logger: Logger(label: "halyard.nvme"))
            controllers.append(controller)
            return controller
        } catch {
            throw CLIError("connect to \(path) failed: \(describe(error))")
        }
    }

    /// Connects one namespace over every path with failover (NVMeHost's `MultipathDevice`);
    /// closed by `close()`. Paths that are not up after connecting are reported as warnings.
    func connectMultipath(_ paths: [TransportAddress], nqn: String, nsid: UInt32, common: NVMeConnectionOptions) async throws -> MultipathDevice {
        let device: MultipathDevice
        do {
            device = try await MultipathDevice.connect(paths: paths, subsystemNQN: nqn, namespaceID: nsid, identity: identity,
                                                       options: options, sessionOptions: common.sessionOptions(),
                                                       group: group, logger: Self.multipathLogger())
        } catch {
            throw CLIError("connect to \(nqn) failed: \(describe(error))")
        }
        devices.append(device)
        for path in device.paths where !path.isUsable {
            printWarning("path \(path.address) is not usable (\(path.state)\(path.lastError.map { ": " + shortenConnectErrors($0) } ?? "")); using the others")
        }
        return device
    }

    /// Connects `nqn` on every path (NVMeHost's `SubsystemConnection`: a controller per path,
    /// and with `multipath` a `MultipathDevice` per namespace); closed by `close()`. Failures are
    /// in the result, not thrown.
    func connectSubsystem(_ nqn: String, paths: [TransportAddress], multipath: Bool, common: NVMeConnectionOptions) async -> SubsystemConnection {
        let connection = await SubsystemConnection.connect(subsystemNQN: nqn, paths: paths, identity: identity, options: options,
                                                           sessionOptions: common.sessionOptions(), multipath: multipath,
                                                           group: group, logger: Self.multipathLogger())
        subsystems.append(connection)
        return connection
    }

    /// `connectSubsystem` with multipath devices for every subsystem discovery found (all at once).
    func connectAll(_ discovered: [DiscoveredSubsystem], common: NVMeConnectionOptions) async -> [SubsystemConnection] {
        let connections = await SubsystemConnection.connectAll(discovered, identity: identity, options: options,
                                                               sessionOptions: common.sessionOptions(), group: group,
                                                               logger: Self.multipathLogger())
        subsystems += connections
        return connections
    }

    /// The library logger for multipath connects: its per-path warnings are reported by the
    /// commands themselves, in one line each.
    static func multipathLogger() -> Logger {
        var logger = Logger(label: "halyard.nvme")
        if logger.logLevel == .warning { logger.logLevel = .error }
        return logger
    }

    /// Shuts every connected controller down (CC.SHN) and stops the event loops.
    func close() async {
        for d in devices { await d.close() }
        devices.removeAll()
        for s in subsystems { await s.close() }
        subsystems.removeAll()
        for c in controllers { await c.shutdown() }
        controllers.removeAll()
        try? await group.shutdownGracefully()
    }

    /// Runs `body` and always closes the session afterwards.
    func run<T>(_ body: (NVMeCLISession) async throws -> T) async throws -> T {
        let result: T
        do {
            result = try await body(self)
        } catch {
            await close()
            throw error
        }
        await close()
        return result
    }
}

/// What the CLI needs of a namespace: identity and geometry.
struct NamespaceInfo: Encodable {
    var nsid: UInt32
    var blocks: UInt64
    var blockSize: Int
    var sizeBytes: UInt64
    var capacityBlocks: UInt64
    var utilizationBlocks: UInt64
    var anaGroupID: UInt32
    var nmic: UInt8
    var nguid: String?
    var eui64: String?
    var uuid: String?

    enum CodingKeys: String, CodingKey {
        case nsid, blocks, nguid, eui64, uuid, nmic
        case blockSize = "block_size", sizeBytes = "size_bytes", capacityBlocks = "capacity_blocks"
        case utilizationBlocks = "utilization_blocks", anaGroupID = "anagrpid"
    }

    static func load(_ controller: NVMeController, nsid: UInt32) async throws -> (NamespaceInfo, IdentifyNamespace) {
        let ns: IdentifyNamespace
        do {
            ns = try await controller.identifyNamespace(nsid)
        } catch {
            throw CLIError("identify namespace \(nsid) failed: \(describe(error))")
        }
        guard ns.nsze > 0 else { throw CLIError("namespace \(nsid) is not active on \(controller.address)") }
        let descriptors = try? await controller.namespaceDescriptors(nsid)
        let blockSize = ns.formattedLBAFormat?.dataSize ?? 0
        guard blockSize > 0 else { throw CLIError("namespace \(nsid) reports no usable LBA format (FLBAS \(ns.flbas))") }
        let nguid = descriptors?.nguid ?? (ns.nguid.isZero ? nil : ns.nguid)
        let eui64 = descriptors?.eui64 ?? (ns.eui64.isZero ? nil : ns.eui64)
        let info = NamespaceInfo(
            nsid: nsid, blocks: ns.nsze, blockSize: blockSize, sizeBytes: ns.nsze &* UInt64(blockSize),
            capacityBlocks: ns.ncap, utilizationBlocks: ns.nuse, anaGroupID: ns.anagrpid, nmic: ns.nmic,
            nguid: nguid?.description, eui64: eui64?.description, uuid: descriptors?.uuid?.description)
        return (info, ns)
    }
}

extension ANAState {
    /// nvme-cli's names.
    var name: String {
        switch self {
        case .optimized: "optimized"
        case .nonOptimized: "non-optimized"
        case .inaccessible: "inaccessible"
        case .persistentLoss: "persistent-loss"
        case .change: "change"
        }
    }
}

/// Parses a byte given as decimal, 0x-hex or a single character in quotes-free form.
func parseByte(_ text: String) -> UInt8? {
    let t = text.trimmingCharacters(in: .whitespaces).lowercased()
    if t.hasPrefix("0x") { return UInt8(t.dropFirst(2), radix: 16) }
    return UInt8(t)
}

/// `hexdump -C` format: offset, 16 bytes in two groups, ASCII; identical lines squeezed to `*`.
func hexDump(_ bytes: ByteBuffer, baseOffset: UInt64 = 0, emit: (String) -> Void) {
    let count = bytes.readableBytes
    var previous: [UInt8]? = nil
    var squeezing = false
    var chunk = ""
    let hex = Array("0123456789abcdef".utf8)
    var offset = 0
    while offset < count {
        let n = min(16, count - offset)
        let line = bytes.getBytes(at: bytes.readerIndex + offset, length: n)!
        if n == 16, let previous, previous == line {
            if !squeezing { chunk += "*\n"; squeezing = true }
            offset += 16
            continue
        }
        squeezing = false
        previous = line
        var out: [UInt8] = []
        out.reserveCapacity(80)
        let address = String(baseOffset + UInt64(offset), radix: 16)
        out.append(contentsOf: Array(repeating: UInt8(ascii: "0"), count: max(0, 8 - address.utf8.count)))
        out.append(contentsOf: address.utf8)
        out.append(contentsOf: "  ".utf8)
        for i in 0..<16 {
            if i < n {
                out.append(hex[Int(line[i] >> 4)])
                out.append(hex[Int(line[i] & 0xF)])
                out.append(UInt8(ascii: " "))
            } else {
                out.append(contentsOf: "   ".utf8)
            }
            if i == 7 { out.append(UInt8(ascii: " ")) }
        }
        out.append(contentsOf: " |".utf8)
        for b in line { out.append((0x20..<0x7F).contains(b) ? b : UInt8(ascii: ".")) }
        out.append(contentsOf: "|\n".utf8)
        chunk += String(decoding: out, as: UTF8.self)
        if chunk.utf8.count > 1 << 16 { emit(chunk); chunk = "" }
        offset += n
    }
    let end = String(baseOffset + UInt64(count), radix: 16)
    chunk += String(repeating: "0", count: max(0, 8 - end.utf8.count)) + end + "\n"
    emit(chunk)
}

/// Reads or writes `blocks` blocks at `lba` in transfers no larger than MDTS (and 65536 blocks),
/// a few in flight at once.
enum BlockTransfer {
    static func maxBlocksPerCommand(_ controller: NVMeController, blockSize: Int) -> Int {
        max(1, min(controller.maxTransferSize / blockSize, 65536))
    }

    static func checkRange(lba: UInt64, blocks: UInt64, namespace: NamespaceInfo) throws {
        let (end, overflow) = lba.addingReportingOverflow(blocks)
        guard !overflow, end <= namespace.blocks else {
            throw CLIError("LBA range \(lba)+\(blocks) is beyond namespace \(namespace.nsid) (\(namespace.blocks) blocks of \(namespace.blockSize) bytes)")
        }
    }

    static func read(_ controller: NVMeController, namespace: NamespaceInfo, lba: UInt64, blocks: UInt64) async throws -> ByteBuffer {
        let bs = namespace.blockSize
        let step = UInt64(maxBlocksPerCommand(controller, blockSize: bs))
        var out = ByteBuffer()
        out.reserveCapacity(Int(blocks) * bs)
        var next = lba
        let end = lba + blocks
        while next < end {
            // Up to 4 commands in flight, collected in order.
            var futures: [(UInt64, UInt32, EventLoopFuture<CommandCompletion>)] = []
            while next < end && futures.count < 4 {
                let n = UInt32(min(step, end - next))
                futures.append((next, n, controller.submitIO(.read(nsid: namespace.nsid, lba: next, blocks: n, blockSize: bs),
                                                             readLength: Int(n) * bs)))
                next += UInt64(n)
            }
            for (at, n, future) in futures {
                var completion: CommandCompletion
                do {
                    completion = try await future.get()
                } catch {
                    throw CLIError("read of \(n) blocks at LBA \(at) failed: \(describe(error))")
                }
                guard completion.entry.status.isSuccess else {
                    throw CLIError("read of \(n) blocks at LBA \(at) failed: \(completion.entry.status)")
                }
                out.writeBuffer(&completion.data)
            }
        }
        return out
    }

    static func write(_ controller: NVMeController, namespace: NamespaceInfo, lba: UInt64, data: ByteBuffer, fua: Bool) async throws {
        let bs = namespace.blockSize
        precondition(data.readableBytes % bs == 0)
        let step = maxBlocksPerCommand(controller, blockSize: bs)
        let total = data.readableBytes / bs
        var done = 0
        while done < total {
            var futures: [(UInt64, Int, EventLoopFuture<CommandCompletion>)] = []
            while done < total && futures.count < 4 {
                let n = min(step, total - done)
                let at = lba + UInt64(done)
                let slice = data.getSlice(at: data.readerIndex + done * bs, length: n * bs)!
                futures.append((at, n, controller.submitIO(.write(nsid: namespace.nsid, lba: at, blocks: UInt32(n), fua: fua), data: slice)))
                done += n
            }
            for (at, n, future) in futures {
                let completion: CommandCompletion
                do {
                    completion = try await future.get()
                } catch {
                    throw CLIError("write of \(n) blocks at LBA \(at) failed: \(describe(error))")
                }
                guard completion.entry.status.isSuccess else {
                    throw CLIError("write of \(n) blocks at LBA \(at) failed: \(completion.entry.status)")
                }
            }
        }
    }
}

/// Where `read`/`write` do block I/O: with one path, that path's controller; with several,
/// NVMeHost's `MultipathDevice` (ANA-aware path choice, I/O failed over to another path).
enum CLIBlockTarget {
    case single(NVMeController, NamespaceInfo)
    case multipath(MultipathDevice, NamespaceInfo)

    var namespace: NamespaceInfo {
        switch self {
        case .single(_, let ns), .multipath(_, let ns): ns
        }
    }

    static func open(_ session: NVMeCLISession, common: NVMeConnectionOptions, nqn: String) async throws -> CLIBlockTarget {
        let paths = common.paths(defaultPort: 4420)
        if paths.count == 1 {
            let c = try await session.connect(paths[0], nqn: nqn)
            return .single(c, try await NamespaceInfo.load(c, nsid: common.nsid).0)
        }
        let d = try await session.connectMultipath(paths, nqn: nqn, nsid: common.nsid, common: common)
        let info = NamespaceInfo(nsid: d.namespaceID, blocks: d.blockCount, blockSize: d.blockSize,
                                 sizeBytes: d.blockCount &* UInt64(d.blockSize), capacityBlocks: d.blockCount,
                                 utilizationBlocks: d.blockCount, anaGroupID: 0, nmic: 1,
                                 nguid: d.nguid.isZero ? nil : d.nguid.description, eui64: nil, uuid: d.uuid?.description)
        return .multipath(d, info)
    }

    func read(lba: UInt64, blocks: UInt64) async throws -> ByteBuffer {
        try BlockTransfer.checkRange(lba: lba, blocks: blocks, namespace: namespace)
        switch self {
        case .single(let c, let ns):
            return try await BlockTransfer.read(c, namespace: ns, lba: lba, blocks: blocks)
        case .multipath(let d, _):
            do {
                return try await d.read(lba: lba, blocks: UInt32(blocks))
            } catch {
                throw CLIError("read of \(blocks) blocks at LBA \(lba) failed: \(describe(error))")
            }
        }
    }

    func write(lba: UInt64, data: ByteBuffer, fua: Bool) async throws {
        try BlockTransfer.checkRange(lba: lba, blocks: UInt64(data.readableBytes / namespace.blockSize), namespace: namespace)
        switch self {
        case .single(let c, let ns):
            try await BlockTransfer.write(c, namespace: ns, lba: lba, data: data, fua: fua)
        case .multipath(let d, _):
            do {
                try await d.write(lba: lba, data: data, fua: fua)
            } catch {
                throw CLIError("write of \(data.readableBytes / namespace.blockSize) blocks at LBA \(lba) failed: \(describe(error))")
            }
        }
    }
}
