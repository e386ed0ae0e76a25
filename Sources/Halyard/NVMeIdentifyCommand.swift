import ArgumentParser
import Foundation
import NVMe
import NVMeHost

/// `halyard nvme identify`: Identify Controller and Identify Namespace (with its descriptors) of
/// a subsystem, through the first path.
struct NVMeIdentifyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "identify",
        abstract: "Show Identify Controller and Identify Namespace data (like nvme id-ctrl / id-ns).",
        discussion: """
              halyard nvme identify -a 127.0.0.1 -s 4420 -n NQN [--json] [--namespace N]
            Without --namespace every active namespace is shown. Uses the first -a/-s path.
            """)

    @OptionGroup var common: NVMeConnectionOptions

    @Flag(help: "Print one JSON object.")
    var json = false

    struct LBAFormatOutput: Encodable {
        var ms: UInt16
        var ds: UInt8
        var rp: UInt8
        var inUse: Bool
        enum CodingKeys: String, CodingKey { case ms, ds, rp, inUse = "in_use" }
    }

    struct NamespaceOutput: Encodable {
        var info: NamespaceInfo
        var nsze: UInt64
        var ncap: UInt64
        var nuse: UInt64
        var nsfeat: UInt8
        var nlbaf: UInt8
        var flbas: UInt8
        var dlfeat: UInt8
        var rescap: UInt8
        var lbafs: [LBAFormatOutput]

        func encode(to encoder: any Encoder) throws {
            try info.encode(to: encoder)
            var c = encoder.container(keyedBy: Key.self)
            try c.encode(nsze, forKey: .nsze)
            try c.encode(ncap, forKey: .ncap)
            try c.encode(nuse, forKey: .nuse)
            try c.encode(nsfeat, forKey: .nsfeat)
            try c.encode(nlbaf, forKey: .nlbaf)
            try c.encode(flbas, forKey: .flbas)
            try c.encode(dlfeat, forKey: .dlfeat)
            try c.encode(rescap, forKey: .rescap)
            try c.encode(lbafs, forKey: .lbafs)
        }
        enum Key: String, CodingKey { case nsze, ncap, nuse, nsfeat, nlbaf, flbas, dlfeat, rescap, lbafs }
    }

    /// nvme-cli's id-ctrl field names.
    struct ControllerOutput: Encodable {
        var vid: UInt16
        var ssvid: UInt16
        var sn: String
        var mn: String
        var fr: String
        var rab: UInt8
        var ieee: UInt32
        var cmic: UInt8
        var mdts: UInt8
        var cntlid: UInt16
        var ver: String
        var oaes: UInt32
        var ctratt: UInt32
        var cntrltype: UInt8
        var oacs: UInt16
        var acl: UInt8
        var aerl: UInt8
        var lpa: UInt8
        var elpe: UInt8
        var kas: UInt16
        var anatt: UInt8
        var anacap: UInt8
        var anagrpmax: UInt32
        var nanagrpid: UInt32
        var sqes: UInt8
        var cqes: UInt8
        var maxcmd: UInt16
        var nn: UInt32
        var oncs: UInt16
        var fuses: UInt16
        var vwc: UInt8
        var awun: UInt16
        var awupf: UInt16
        var sgls: UInt32
        var mnan: UInt32
        var subnqn: String
        var ioccsz: UInt32
        var iorcsz: UInt32
        var icdoff: UInt16
        var msdbd: UInt8
    }

    struct Output: Encodable {
        var traddr: String
        var trsvcid: String
        var controller: ControllerOutput
        var namespaces: [NamespaceOutput]

        func encode(to encoder: any Encoder) throws {
            // The controller fields at the top level (nvme-cli id-ctrl style), plus the path and namespaces.
            try controller.encode(to: encoder)
            var c = encoder.container(keyedBy: Key.self)
            try c.encode(traddr, forKey: .traddr)
            try c.encode(trsvcid, forKey: .trsvcid)
            try c.encode(namespaces, forKey: .namespaces)
        }
        enum Key: String, CodingKey { case traddr, trsvcid, namespaces }
    }

    func run() async throws {
        try await runNVMeCommand(logLevel: common.logLevel) {
            let nqn = try common.requireNQN()
            let path = common.paths(defaultPort: 4420)[0]
            var options = common.controllerOptions()
            options.ioQueueCount = 0  // admin commands only
            let session = try NVMeCLISession(common)
            let output = try await session.run { session in
                let c = try await session.connect(path, nqn: nqn, options: options)
                let nsids: [UInt32]
                if let ns = common.namespace {
                    nsids = [ns]
                } else {
                    do {
                        nsids = try await c.activeNamespaces()
                    } catch {
                        throw CLIError("active namespace list from \(path) failed: \(describe(error))")
                    }
                }
                var namespaces: [NamespaceOutput] = []
                for nsid in nsids {
                    let (info, ns) = try await NamespaceInfo.load(c, nsid: nsid)
                    let inUse = Int(ns.flbas & 0x0F) | Int((ns.flbas >> 5) & 0x03) << 4
                    namespaces.append(NamespaceOutput(
                        info: info, nsze: ns.nsze, ncap: ns.ncap, nuse: ns.nuse, nsfeat: ns.nsfeat, nlbaf: ns.nlbaf,
                        flbas: ns.flbas, dlfeat: ns.dlfeat, rescap: ns.rescap,
                        lbafs: ns.lbaFormats.enumerated().map { i, f in
                            LBAFormatOutput(ms: f.metadataSize, ds: f.lbaDataSizeShift, rp: f.relativePerformance, inUse: i == inUse)
                        }))
                }
                return Output(traddr: path.host, trsvcid: String(path.port), controller: Self.controller(c.identify), namespaces: namespaces)
            }
            if json {
                try printJSON(output)
            } else {
                writeStdout(Self.text(output))
            }
        }
    }

    static func controller(_ i: IdentifyController) -> ControllerOutput {
        let ver = "\(i.version >> 16).\((i.version >> 8) & 0xFF)" + (i.version & 0xFF != 0 ? ".\(i.version & 0xFF)" : "")
        return ControllerOutput(
            vid: i.vid, ssvid: i.ssvid, sn: i.serialNumber, mn: i.modelNumber, fr: i.firmwareRevision, rab: i.rab,
            ieee: i.ieee, cmic: i.cmic, mdts: i.mdts, cntlid: i.cntlid, ver: ver, oaes: i.oaes, ctratt: i.ctratt,
            cntrltype: i.cntrltype, oacs: i.oacs, acl: i.acl, aerl: i.aerl, lpa: i.lpa, elpe: i.elpe, kas: i.kas,
            anatt: i.anatt, anacap: i.anacap, anagrpmax: i.anagrpmax, nanagrpid: i.nanagrpid, sqes: i.sqes, cqes: i.cqes,
            maxcmd: i.maxcmd, nn: i.nn, oncs: i.oncs, fuses: i.fuses, vwc: i.vwc, awun: i.awun, awupf: i.awupf,
            sgls: i.sgls, mnan: i.mnan, subnqn: i.subnqn, ioccsz: i.ioccsz, iorcsz: i.iorcsz, icdoff: i.icdoff, msdbd: i.msdbd)
    }

    static func text(_ o: Output) -> String {
        let c = o.controller
        func hex<T: BinaryInteger>(_ v: T) -> String { "0x" + String(v, radix: 16) }
        let rows: [(String, String)] = [
            ("path", TransportAddress(host: o.traddr, port: Int(o.trsvcid) ?? 0).description),
            ("vid", hex(c.vid)), ("ssvid", hex(c.ssvid)), ("sn", c.sn), ("mn", c.mn), ("fr", c.fr), ("rab", "\(c.rab)"),
            ("ieee", String(format: "%06x", c.ieee)), ("cmic", hex(c.cmic)), ("mdts", "\(c.mdts)"), ("cntlid", hex(c.cntlid)),
            ("ver", c.ver), ("oaes", hex(c.oaes)), ("ctratt", hex(c.ctratt)), ("cntrltype", "\(c.cntrltype)"),
            ("oacs", hex(c.oacs)), ("acl", "\(c.acl)"), ("aerl", "\(c.aerl)"), ("lpa", hex(c.lpa)), ("elpe", "\(c.elpe)"),
            ("kas", "\(c.kas)"), ("anatt", "\(c.anatt)"), ("anacap", "\(c.anacap)"), ("anagrpmax", "\(c.anagrpmax)"),
            ("nanagrpid", "\(c.nanagrpid)"), ("sqes", hex(c.sqes)), ("cqes", hex(c.cqes)), ("maxcmd", "\(c.maxcmd)"),
            ("nn", "\(c.nn)"), ("oncs", hex(c.oncs)), ("fuses", hex(c.fuses)), ("vwc", hex(c.vwc)), ("awun", "\(c.awun)"),
            ("awupf", "\(c.awupf)"), ("sgls", hex(c.sgls)), ("mnan", "\(c.mnan)"), ("subnqn", c.subnqn),
            ("ioccsz", "\(c.ioccsz)"), ("iorcsz", "\(c.iorcsz)"), ("icdoff", "\(c.icdoff)"), ("msdbd", "\(c.msdbd)"),
        ]
        var text = "NVME Identify Controller:\n"
        for (k, v) in rows { text += k.padding(toLength: 10, withPad: " ", startingAt: 0) + ": " + v + "\n" }
        for n in o.namespaces {
            let i = n.info
            text += "\nNVME Identify Namespace \(i.nsid):\n"
            let nsRows: [(String, String)] = [
                ("nsze", hex(n.nsze)), ("ncap", hex(n.ncap)), ("nuse", hex(n.nuse)), ("nsfeat", hex(n.nsfeat)),
                ("nlbaf", "\(n.nlbaf)"), ("flbas", hex(n.flbas)), ("nmic", hex(i.nmic)), ("rescap", hex(n.rescap)),
                ("dlfeat", "\(n.dlfeat)"), ("anagrpid", "\(i.anaGroupID)"), ("nguid", i.nguid ?? "-"),
                ("eui64", i.eui64 ?? "-"), ("uuid", i.uuid ?? "-"),
                ("size", "\(i.sizeBytes) bytes (\(i.blocks) blocks × \(i.blockSize))"),
            ]
            for (k, v) in nsRows { text += k.padding(toLength: 10, withPad: " ", startingAt: 0) + ": " + v + "\n" }
            for (index, f) in n.lbafs.enumerated() {
                text += "lbaf \(String(index).padding(toLength: 2, withPad: " ", startingAt: 0)) : ms:\(f.ms) lbads:\(f.ds) rp:\(hex(f.rp))\(f.inUse ? " (in use)" : "")\n"
            }
        }
        return text
    }
}
