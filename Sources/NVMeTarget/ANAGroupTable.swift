import NVMe
import Synchronization

/// ANA limits the target reports in Identify Controller (NVMe base spec 2.0 §8.1.3, Figure 275:
/// ANAGRPMAX, NANAGRPID, NN, MNAN) and the default group of a namespace.
enum ANAGroups {
    /// The group a namespace is in unless configured otherwise.
    static let defaultGroupID: UInt32 = 1
    /// ANAGRPMAX and NANAGRPID: group IDs are 1...16, so one path's states pack into 64 bits.
    static let maximumGroupID: UInt32 = 16
    /// NN and MNAN.
    static let maximumNamespaceID: UInt32 = 1024
    /// Every configurable group ID.
    static let validGroupIDs: ClosedRange<UInt32> = 1...maximumGroupID
}

/// The Asymmetric Namespace Access groups of one NVM subsystem (NVMe base spec 2.0 §8.1.3,
/// research/nvme-tcp.md §6): which namespaces each group holds (fixed for the subsystem's life),
/// the state of every group on every path (one path per listener), and one change count that
/// every state change increments and that the ANA log page reports in its header and in every
/// descriptor.
///
/// Concurrency: a mutex owns the change count and serializes changes; each path's states are
/// published in that path's atomic word (`ANAPath`), stored only while the mutex is held, so the
/// I/O path reads a state with one atomic load and a log page read under the mutex is a
/// consistent snapshot.
public final class ANAGroupTable: Sendable {
    /// Group IDs that hold at least one namespace, ascending (the descriptors of the log page).
    public let groupIDs: [UInt32]
    /// Member NSIDs of each group, ascending.
    public let namespaceIDs: [UInt32: [UInt32]]
    /// One path per listener, by listener index (configuration order).
    let paths: [ANAPath]
    private let changeCount: Mutex<UInt64>

    /// `groupOf` maps every namespace ID to its group ID (validated by the caller: 1...16).
    init(groupOf: [UInt32: UInt32], listenerCount: Int) {
        var members: [UInt32: [UInt32]] = [:]
        for (nsid, group) in groupOf {
            precondition(ANAGroups.validGroupIDs.contains(group), "ANA group \(group) of namespace \(nsid) is outside 1...\(ANAGroups.maximumGroupID)")
            members[group, default: []].append(nsid)
        }
        namespaceIDs = members.mapValues { $0.sorted() }
        groupIDs = members.keys.sorted()
        paths = (0..<max(listenerCount, 1)).map { ANAPath(listenerIndex: $0) }
        changeCount = Mutex(1)  // as before runtime changes existed; every change adds one
    }

    /// The current change count (CHGCNT).
    public var currentChangeCount: UInt64 { changeCount.withLock { $0 } }

    /// Whether `group` holds namespaces of this subsystem.
    public func contains(group: UInt32) -> Bool { namespaceIDs[group] != nil }

    /// The path of listener `index` (the first path for an index the table does not know, as for a
    /// connection handler made outside `start()`).
    func path(listenerIndex index: Int) -> ANAPath {
        paths.indices.contains(index) ? paths[index] : paths[0]
    }

    /// The state of `group` seen through listener `listenerIndex`.
    public func state(group: UInt32, listenerIndex: Int) -> ANAState {
        path(listenerIndex: listenerIndex).state(ofGroup: group)
    }

    /// Sets the state of `group` on listener `listenerIndex`. A change increments the change count;
    /// setting the state a path already has changes nothing. Returns whether it changed and the
    /// change count after it.
    func setState(_ state: ANAState, group: UInt32, listenerIndex: Int) -> (changed: Bool, changeCount: UInt64) {
        precondition(contains(group: group) && paths.indices.contains(listenerIndex))
        return changeCount.withLock { count in
            let path = paths[listenerIndex]
            guard path.state(ofGroup: group) != state else { return (false, count) }
            path.publish(state, group: group)
            count += 1
            return (true, count)
        }
    }

    /// The ANA log page through listener `listenerIndex` (NVMe base spec 2.0 §5.16.1.12): the
    /// global change count in the header and in every descriptor, one descriptor per group that
    /// holds namespaces, ascending, each with its NSIDs ascending.
    func logPage(listenerIndex: Int) -> ANALogPage {
        let path = path(listenerIndex: listenerIndex)
        return changeCount.withLock { count in
            ANALogPage(changeCount: count, groups: groupIDs.map { group in
                .init(anaGroupID: group, changeCount: count, state: path.state(ofGroup: group), namespaceIDs: namespaceIDs[group] ?? [])
            })
        }
    }
}

/// One path's view of a subsystem's ANA groups: the state of every group through one listener,
/// four bits per group ID (group g in bits 4(g−1)...4g−1) in one atomic word. Read lock-free by the
/// I/O path; stored only by `ANAGroupTable` while it holds its mutex.
final class ANAPath: Sendable {
    let listenerIndex: Int
    private let packed: Atomic<UInt64>

    /// Every group starts optimized.
    init(listenerIndex: Int) {
        self.listenerIndex = listenerIndex
        var word: UInt64 = 0
        for g in ANAGroups.validGroupIDs { word |= UInt64(ANAState.optimized.rawValue) << Self.shift(g) }
        packed = Atomic(word)
    }

    private static func shift(_ group: UInt32) -> UInt64 { UInt64(group - 1) * 4 }

    func state(ofGroup group: UInt32) -> ANAState {
        guard ANAGroups.validGroupIDs.contains(group) else { return .inaccessible }
        let nibble = UInt8(truncatingIfNeeded: packed.load(ordering: .acquiring) >> Self.shift(group)) & 0xF
        return ANAState(rawValue: nibble) ?? .inaccessible
    }

    /// Only `ANAGroupTable.setState`, under its mutex (so load-modify-store cannot race).
    fileprivate func publish(_ state: ANAState, group: UInt32) {
        let shift = Self.shift(group)
        let old = packed.load(ordering: .relaxed)
        packed.store(old & ~(0xF << shift) | UInt64(state.rawValue) << shift, ordering: .releasing)
    }

    /// The path status an I/O command on a namespace of `group` gets through this path, or nil
    /// when it may execute (research/nvme-tcp.md §5, §6.2: never DNR on SCT 3).
    @inline(__always)
    func ioStatus(group: UInt32) -> NVMeStatus? {
        state(ofGroup: group).ioStatus
    }
}

extension ANAState {
    /// The SCT 3 status I/O gets in this state: Asymmetric Access Persistent Loss (3/01),
    /// Inaccessible (3/02) or Transition (3/03); nil when I/O executes. No DNR: the host retries
    /// on another path.
    public var ioStatus: NVMeStatus? {
        switch self {
        case .optimized, .nonOptimized: nil
        case .inaccessible: .anaInaccessible
        case .persistentLoss: .anaPersistentLoss
        case .change: .anaTransition
        }
    }

    /// The name used by the control interface and the CLI.
    public var name: String {
        switch self {
        case .optimized: "optimized"
        case .nonOptimized: "non-optimized"
        case .inaccessible: "inaccessible"
        case .persistentLoss: "persistent-loss"
        case .change: "change"
        }
    }

    /// Parses `name` (`optimized`, `non-optimized`, `inaccessible`, `persistent-loss`, `change`).
    public init?(name: String) {
        guard let state = Self.allCases.first(where: { $0.name == name }) else { return nil }
        self = state
    }
}

extension ANAPath {
    /// The path status for an I/O command on `namespace` (nil: no such namespace, which the command
    /// itself reports). A broadcast Flush (NSID FFFFFFFFh) is refused while any group of the
    /// subsystem is not accessible through this path.
    @inline(__always)
    func ioStatus(namespace: Namespace?, namespaceID: UInt32, subsystem: Subsystem) -> NVMeStatus? {
        if let namespace { return ioStatus(group: namespace.anaGroupID) }
        guard namespaceID == 0xFFFF_FFFF else { return nil }
        for group in subsystem.ana.groupIDs {
            if let status = ioStatus(group: group) { return status }
        }
        return nil
    }
}
