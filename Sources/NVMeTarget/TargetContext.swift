import Logging
import NIOCore
import NVMe
import Synchronization

/// What every connection of one target shares: its subsystems by NQN, the discovery subsystem,
/// its listeners and limits. Immutable after start.
final class TargetContext: Sendable {
    let subsystems: [String: Subsystem]
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
        self.subsystems = byNQN
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

    /// The discovery log's GENCTR: changes whenever the subsystems some host may see change (every
    /// host access change increments its subsystem's generation; listeners are fixed).
    var discoveryGeneration: UInt64 {
        subsystems.values.reduce(1) { $0 &+ $1.hostAccessGeneration }
    }

    func subsystem(nqn: String) -> Subsystem? {
        if nqn == Subsystem.discoveryNQN { return discovery }
        return subsystems[nqn]
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
