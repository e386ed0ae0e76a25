import Foundation
import Logging
import NIOCore
import NVMe

/// Discovery: asks discovery controllers which NVM subsystems they offer and where (NVMe over
/// Fabrics 1.1 §5 "Discovery Service" and §5.3 "Discovery Log Page"; NVMe 2.0 Base spec §5.16.1.23,
/// Get Log Page LID 70h, Figures 258 (header: GENCTR, NUMREC, RECFMT) and 259 (entry: TRTYPE,
/// ADRFAM, SUBTYPE, TREQ, PORTID, CNTLID, ASQSZ, EFLAGS, TRSVCID, SUBNQN, TRADDR, TSAS)).
///
/// Which entries are used (``DiscoveryReport/add(_:from:subsystemNQN:referredBy:options:)``):
/// - SUBTYPE 2 (NVM subsystem), TRTYPE TCP, ADRFAM IPv4/IPv6, no TLS (TREQ not "required",
///   SECTYPE 0), a TRADDR and a TCP port in TRSVCID: a path of that SUBNQN. The same (SUBNQN,
///   address, port) listed by several discovery controllers is one path.
/// - SUBTYPE 3 (the current discovery subsystem), other transports, address families, TLS, and
///   unrecognized subtypes are skipped, each with its reason.
/// - SUBTYPE 1 (referral to another discovery service) is followed one level deep: referrals on
///   the pages of the discovery controllers given are read; referrals on a referred controller's
///   page are skipped, as are referrals to a discovery controller already asked (cycle guard).
/// - The entry's TRADDR is used as given, unless ``DiscoveryOptions/useDiscoveryAddress``
///   replaces it with the host the discovery controller was reached at (for targets that
///   advertise an address this host cannot reach, e.g. 10.0.2.2 behind QEMU's user network).
public enum NVMeDiscovery {
    /// The well-known discovery subsystem NQN.
    public static let discoveryNQN = "nqn.2014-08.org.nvmexpress.discovery"

    /// Reads the discovery log page of every controller in `addresses` (and of the referrals they
    /// list, one level deep) and groups what they offer. Never throws: a discovery controller that
    /// cannot be reached or read is one of ``DiscoveryReport/failures``.
    public static func discover(_ addresses: [TransportAddress], subsystemNQN: String = discoveryNQN, identity: HostIdentity,
                                options: DiscoveryOptions = DiscoveryOptions(), group: any EventLoopGroup,
                                logger: Logger = Logger(label: "halyard.nvme-discovery")) async -> DiscoveryReport {
        var report = DiscoveryReport()
        report.known.formUnion(addresses)
        var queue: [(address: TransportAddress, nqn: String, referredBy: TransportAddress?)] = addresses.map { ($0, subsystemNQN, nil) }
        var next = 0
        while next < queue.count {
            let (address, nqn, referredBy) = queue[next]
            next += 1
            do throws(DiscoveryError) {
                let page = try await readLogPage(from: address, subsystemNQN: nqn, identity: identity, options: options.controller,
                                                 group: group, logger: logger)
                let referrals = report.add(page, from: address, subsystemNQN: nqn, referredBy: referredBy, options: options)
                queue += referrals.map { ($0.address, $0.subsystemNQN, address) }
            } catch {
                logger.warning("discovery controller \(address): \(error)")
                report.controllers.append(DiscoveryControllerOutcome(address: address, subsystemNQN: nqn, referredBy: referredBy,
                                                                     error: error))
            }
        }
        return report
    }

    /// Connects to the discovery controller at `address`, reads its log page and disconnects.
    /// Throws ``DiscoveryError``.
    public static func readLogPage(from address: TransportAddress, subsystemNQN: String = discoveryNQN, identity: HostIdentity,
                                   options: ControllerOptions = DiscoveryOptions().controller, group: any EventLoopGroup,
                                   logger: Logger = Logger(label: "halyard.nvme-discovery")) async throws(DiscoveryError) -> DiscoveryLogPage {
        let controller: NVMeController
        do {
            controller = try await NVMeController.connect(to: address, subsystemNQN: subsystemNQN, identity: identity,
                                                          options: options, group: group, logger: logger)
        } catch {
            throw .connect(address, error)
        }
        do {
            let page = try await controller.discoveryLogPage()
            await controller.shutdown()
            return page
        } catch {
            await controller.shutdown()
            throw .logPage(address, error)
        }
    }
}

/// How discovery connects and which entries it uses.
public struct DiscoveryOptions: Sendable {
    /// Connect each path (and referral) to the host the discovery controller was reached at
    /// instead of the entry's TRADDR; the entry's TRSVCID is kept. Paths that then coincide are one.
    public var useDiscoveryAddress = false
    /// Read the discovery controllers that referral entries point at (one level deep).
    public var followReferrals = true
    /// How discovery controllers are connected: no I/O queues, no keep-alive (they are read once).
    public var controller: ControllerOptions

    public init(useDiscoveryAddress: Bool = false, followReferrals: Bool = true, controller: ControllerOptions = ControllerOptions()) {
        self.useDiscoveryAddress = useDiscoveryAddress
        self.followReferrals = followReferrals
        var controller = controller
        controller.ioQueueCount = 0
        controller.keepAliveTimeout = .zero
        self.controller = controller
    }
}

/// Why a discovery controller could not be read.
public enum DiscoveryError: Error, CustomStringConvertible {
    /// Connecting to the discovery controller failed.
    case connect(TransportAddress, any Error)
    /// Reading its log page failed.
    case logPage(TransportAddress, any Error)

    public var address: TransportAddress {
        switch self {
        case .connect(let a, _), .logPage(let a, _): a
        }
    }

    public var underlying: any Error {
        switch self {
        case .connect(_, let e), .logPage(_, let e): e
        }
    }

    /// The failure without the underlying error.
    public var summary: String {
        switch self {
        case .connect(let a, _): "connect to discovery controller \(a) failed"
        case .logPage(let a, _): "discovery log page from \(a) failed"
        }
    }

    public var description: String { "\(summary): \(underlying)" }
}

/// One NVM subsystem found by discovery, with every path to it.
public struct DiscoveredSubsystem: Hashable, Sendable {
    public var nqn: String
    /// In the order first seen.
    public var paths: [DiscoveredPath]

    public init(nqn: String, paths: [DiscoveredPath]) {
        self.nqn = nqn
        self.paths = paths
    }

    /// Where to connect, one address per path.
    public var addresses: [TransportAddress] { paths.map(\.address) }
}

/// One path of a ``DiscoveredSubsystem``.
public struct DiscoveredPath: Hashable, Sendable {
    /// Where to connect (the entry's TRADDR, or the discovery controller's host, and TRSVCID).
    public var address: TransportAddress
    /// The entry as the first discovery controller that listed it had it.
    public var entry: DiscoveryLogEntry
    /// Every discovery controller that listed it.
    public var sources: [TransportAddress]

    public init(address: TransportAddress, entry: DiscoveryLogEntry, sources: [TransportAddress]) {
        self.address = address
        self.entry = entry
        self.sources = sources
    }
}

/// A discovery log entry that is not connected, and why.
public struct SkippedDiscoveryEntry: Hashable, Sendable {
    public var entry: DiscoveryLogEntry
    /// The discovery controller whose log page listed it.
    public var source: TransportAddress
    public var reason: String

    public init(entry: DiscoveryLogEntry, source: TransportAddress, reason: String) {
        self.entry = entry
        self.source = source
        self.reason = reason
    }
}

/// A referral entry to follow: another discovery controller.
public struct DiscoveryReferral: Hashable, Sendable {
    public var address: TransportAddress
    /// The referred discovery subsystem's NQN (the well-known one if the entry has none).
    public var subsystemNQN: String
    public var referredBy: TransportAddress

    public init(address: TransportAddress, subsystemNQN: String, referredBy: TransportAddress) {
        self.address = address
        self.subsystemNQN = subsystemNQN
        self.referredBy = referredBy
    }
}

/// One discovery controller asked: what its page held, or why it could not be read.
public struct DiscoveryControllerOutcome: Sendable {
    public var address: TransportAddress
    public var subsystemNQN: String
    /// The discovery controller whose referral entry led here; nil for one given by the caller.
    public var referredBy: TransportAddress?
    /// GENCTR of its page.
    public var generationCounter: UInt64?
    /// NUMREC of its page.
    public var recordCount: Int?
    public var error: DiscoveryError?

    public init(address: TransportAddress, subsystemNQN: String, referredBy: TransportAddress? = nil,
                generationCounter: UInt64? = nil, recordCount: Int? = nil, error: DiscoveryError? = nil) {
        self.address = address
        self.subsystemNQN = subsystemNQN
        self.referredBy = referredBy
        self.generationCounter = generationCounter
        self.recordCount = recordCount
        self.error = error
    }
}

/// What discovery found: the NVM subsystems with their paths, the entries skipped with why, and
/// each discovery controller asked. ``add(_:from:subsystemNQN:referredBy:options:)`` is the pure
/// step (no I/O) that ``NVMeDiscovery/discover(_:subsystemNQN:identity:options:group:logger:)``
/// applies to every page it reads.
public struct DiscoveryReport: Sendable {
    /// In the order first seen.
    public var subsystems: [DiscoveredSubsystem] = []
    public var skipped: [SkippedDiscoveryEntry] = []
    /// In the order asked.
    public var controllers: [DiscoveryControllerOutcome] = []
    /// Discovery controllers asked or about to be (the referral cycle guard).
    var known: Set<TransportAddress> = []

    public init() {}

    /// The discovery controllers that could not be read.
    public var failures: [DiscoveryError] { controllers.compactMap(\.error) }

    /// Adds the entries of `page`, read from the discovery controller at `source` (reached through
    /// a referral from `referredBy`, or given by the caller if nil). Returns the referrals to
    /// read next; they count as asked from now on.
    @discardableResult
    public mutating func add(_ page: DiscoveryLogPage, from source: TransportAddress, subsystemNQN: String = NVMeDiscovery.discoveryNQN,
                             referredBy: TransportAddress? = nil, options: DiscoveryOptions = DiscoveryOptions()) -> [DiscoveryReferral] {
        known.insert(source)
        controllers.append(DiscoveryControllerOutcome(address: source, subsystemNQN: subsystemNQN, referredBy: referredBy,
                                                      generationCounter: page.generationCounter, recordCount: page.entries.count))
        var referrals: [DiscoveryReferral] = []
        for entry in page.entries {
            let address: TransportAddress
            switch Self.usable(entry, source: source, options: options) {
            case .failure(let reason):
                skipped.append(SkippedDiscoveryEntry(entry: entry, source: source, reason: reason.text))
                continue
            case .success(let a):
                address = a
            }
            if entry.subsystemType == .referral {
                let reason: String? =
                    if !options.followReferrals { "referrals are not followed" }
                    else if referredBy != nil { "referral from a referred discovery controller (only one level is followed)" }
                    else if known.contains(address) { "referral to a discovery controller already asked" }
                    else { nil }
                if let reason {
                    skipped.append(SkippedDiscoveryEntry(entry: entry, source: source, reason: reason))
                } else {
                    known.insert(address)
                    let nqn = entry.subsystemNQN.isEmpty ? NVMeDiscovery.discoveryNQN : entry.subsystemNQN
                    referrals.append(DiscoveryReferral(address: address, subsystemNQN: nqn, referredBy: source))
                }
                continue
            }
            let nqn = entry.subsystemNQN
            if let s = subsystems.firstIndex(where: { $0.nqn == nqn }) {
                if let p = subsystems[s].paths.firstIndex(where: { $0.address == address }) {
                    if !subsystems[s].paths[p].sources.contains(source) { subsystems[s].paths[p].sources.append(source) }
                } else {
                    subsystems[s].paths.append(DiscoveredPath(address: address, entry: entry, sources: [source]))
                }
            } else {
                subsystems.append(DiscoveredSubsystem(nqn: nqn, paths: [DiscoveredPath(address: address, entry: entry, sources: [source])]))
            }
        }
        return referrals
    }

    struct SkipReason: Error {
        var text: String
    }

    /// Where to connect for `entry` (an NVM subsystem or a referral), or why it is not used.
    static func usable(_ entry: DiscoveryLogEntry, source: TransportAddress, options: DiscoveryOptions) -> Result<TransportAddress, SkipReason> {
        func skip(_ text: String) -> Result<TransportAddress, SkipReason> { .failure(SkipReason(text: text)) }
        switch entry.subsystemType {
        case .nvmSubsystem, .referral: break
        case .currentDiscoverySubsystem: return skip("the current discovery subsystem (the controller that answered)")
        default: return skip("unrecognized subsystem type \(entry.subsystemType.rawValue)")
        }
        guard entry.transportType == .tcp else { return skip("transport \(entry.transportType.name) is not supported (only tcp)") }
        guard entry.addressFamily == .ipv4 || entry.addressFamily == .ipv6 else {
            return skip("address family \(entry.addressFamily.name) is not supported (only ipv4, ipv6)")
        }
        guard entry.tcpSecurityType == 0 && entry.transportRequirements & 0x3 != 1 else {
            return skip("requires a secure channel (TLS), which is not supported")
        }
        let traddr = entry.transportAddress.trimmingCharacters(in: .whitespaces)
        let trsvcid = entry.transportServiceID.trimmingCharacters(in: .whitespaces)
        guard let port = Int(trsvcid), (1...65535).contains(port) else { return skip("TRSVCID '\(trsvcid)' is not a TCP port") }
        guard !traddr.isEmpty || options.useDiscoveryAddress else { return skip("no TRADDR") }
        guard entry.subsystemType == .referral || !entry.subsystemNQN.isEmpty else { return skip("no SUBNQN") }
        return .success(TransportAddress(host: options.useDiscoveryAddress ? source.host : traddr, port: port))
    }
}

extension DiscoveryLogEntry.TransportType {
    /// nvme-cli's name.
    public var name: String {
        switch self {
        case .tcp: "tcp"
        case .rdma: "rdma"
        case .fibreChannel: "fc"
        case .loop: "loop"
        default: "unrecognized (\(rawValue))"
        }
    }
}

extension DiscoveryLogEntry.AddressFamily {
    /// nvme-cli's name.
    public var name: String {
        switch self {
        case .ipv4: "ipv4"
        case .ipv6: "ipv6"
        case .infiniBand: "infiniband"
        case .fibreChannel: "fibre-channel"
        case .pci: "pci"
        default: "unrecognized (\(rawValue))"
        }
    }
}

extension DiscoveryLogEntry.SubsystemType {
    /// nvme-cli's name.
    public var name: String {
        switch self {
        case .referral: "referral"
        case .nvmSubsystem: "nvme subsystem"
        case .currentDiscoverySubsystem: "current discovery subsystem"
        default: "unrecognized (\(rawValue))"
        }
    }
}
