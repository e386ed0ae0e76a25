import Logging
import NIOCore
import NVMe
import Synchronization

/// What every connection of one target shares: its subsystems by NQN (added and removed at
/// runtime by ``NVMeTCPTarget/addSubsystem(_:)`` and ``NVMeTCPTarget/removeSubsystem(nqn:)``), the
/// discovery subsystem, its listeners and limits.
final class TargetContext: Sendable {
    private struct SubsystemTable {
        var byNQN: [String: Subsystem]
        /// Bumped on every add and remove: part of the discovery log's GENCTR.
        var generation: UInt64 = 0
    }

    private let subsystemTable: Mutex<SubsystemTable>
    /// The NVM subsystems now served, by NQN (a snapshot).
    var subsystems: [String: Subsystem] { subsystemTable.withLock { $0.byNQN } }
    let discovery: Subsystem?
    /// Listeners with their bound ports (known once the target has started).
    var listeners: [ListenerConfiguration] { boundListeners.withLock { $0 } }
    let boundListeners: Mutex<[ListenerConfiguration]>
    /// Read/write counters of each NVM listener's I/O queues, by listener index.
    let listenerCounterSets: [IOCounterSet]
    let limits: TargetLimits
    let logger: Logger

    init(subsystems: [Subsystem], discovery: Subsystem?, listeners: [ListenerConfiguration], limits: TargetLimits, logger: Logger) {
        var byNQN: [String: Subsystem] = [:]
        for s in subsystems { byNQN[s.nqn] = s }
        self.subsystemTable = Mutex(SubsystemTable(byNQN: byNQN))
        self.discovery = discovery
        self.boundListeners = Mutex(listeners)
        self.listenerCounterSets = listeners.map { _ in IOCounterSet() }
        self.limits = limits
        self.logger = logger
    }

    /// The counters of NVM listener `index` (nil for the discovery listener).
    func listenerCounters(_ index: Int) -> IOCounterSet? {
        listenerCounterSets.indices.contains(index) ? listenerCounterSets[index] : nil
    }

    /// The discovery log's GENCTR: changes whenever the subsystems some host may see change (a
    /// subsystem added or removed, or a host access change, which increments its subsystem's
    /// generation; listeners are fixed).
    var discoveryGeneration: UInt64 {
        let (generation, subsystems) = subsystemTable.withLock { ($0.generation, Array($0.byNQN.values)) }
        return subsystems.reduce(1 &+ generation) { $0 &+ $1.hostAccessGeneration }
    }

    func subsystem(nqn: String) -> Subsystem? {
        if nqn == Subsystem.discoveryNQN { return discovery }
        return subsystemTable.withLock { $0.byNQN[nqn] }
    }

    /// Adds `subsystem`; false when its NQN is taken.
    func insert(_ subsystem: Subsystem) -> Bool {
        subsystemTable.withLock { table in
            guard table.byNQN[subsystem.nqn] == nil, subsystem.nqn != Subsystem.discoveryNQN else { return false }
            table.byNQN[subsystem.nqn] = subsystem
            table.generation &+= 1
            return true
        }
    }

    /// Removes and returns the subsystem: no new Connect finds it afterwards.
    func remove(nqn: String) -> Subsystem? {
        subsystemTable.withLock { table in
            guard let removed = table.byNQN.removeValue(forKey: nqn) else { return nil }
            table.generation &+= 1
            return removed
        }
    }

    /// The discovery log page for `hostNQN`: one entry per (subsystem the host may access ×
    /// listener), with the listener's advertised address (NVMe over Fabrics spec 1.1 §5.3).
    func discoveryLogPage(hostNQN: String) -> DiscoveryLogPage {
        let generation = discoveryGeneration  // before the entries: a change in between shows on the next read
        var entries: [DiscoveryLogEntry] = []
        for subsystem in subsystems.values.sorted(by: { $0.nqn < $1.nqn }) where subsystem.isHostAllowed(hostNQN) {
            for (index, listener) in listeners.enumerated() {
                let address = listener.advertisedHost ?? listener.host
                entries.append(DiscoveryLogEntry(
                    transportType: .tcp, addressFamily: address.contains(":") ? .ipv6 : .ipv4,
                    subsystemType: .nvmSubsystem, transportRequirements: 0x02 /* secure channel not required */,
                    portID: UInt16(index + 1), controllerID: 0xFFFF, adminMaxSubmissionQueueSize: 32,
                    transportServiceID: String(listener.port), subsystemNQN: subsystem.nqn,
                    transportAddress: address))
            }
        }
        return DiscoveryLogPage(generationCounter: generation, entries: entries)
    }
}
