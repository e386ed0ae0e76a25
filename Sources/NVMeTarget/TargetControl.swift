import NIOCore
import NVMe

/// Runtime control of a running target — the library side of `halyard nvmf-target`'s control
/// interface: the ANA state of a group on one listener (NVMe base spec 2.0 §8.1.3 and the ANA
/// change event of §5.2), who may use a subsystem, and I/O statistics.
extension NVMeTCPTarget {
    /// The AEN result of an ANA change: Notice (2h), ANA Change (03h), log page 0Ch.
    static let anaChangeEvent: UInt32 = 0x000C_0302
    /// AEC bit 11: ANA change notices enabled.
    static let anaChangeEnableBit: UInt32 = 1 << 11
    /// The AEN result of a Discovery Log Page Change: Notice (2h), F0h, log page 70h.
    static let discoveryChangeEvent: UInt32 = 0x0070_F002
    /// AEC bit 31: discovery log change notices enabled.
    static let discoveryChangeEnableBit: UInt32 = 1 << 31

    /// Sets the ANA state of `group` of `subsystemNQN` on `listener` (the bound address, e.g.
    /// 127.0.0.1:4420). On a change the subsystem's change count goes up by one and every
    /// controller connected through that listener that enabled ANA change events (AEC bit 11) gets
    /// the event 0x000C0302; from then on I/O through that listener to the group's namespaces gets
    /// the state's path status (3/02, 3/01, 3/03, never DNR) or executes again.
    @discardableResult
    public func setANAState(subsystemNQN: String, listener: ListenerAddress, group: UInt32 = 1,
                            state: ANAState) async throws(TargetControlError) -> ANAStateChange {
        let subsystem = try nvmSubsystem(subsystemNQN)
        let index = try listenerIndex(listener)
        guard subsystem.ana.contains(group: group) else {
            throw .unknownANAGroup(group, subsystem: subsystemNQN, known: subsystem.ana.groupIDs)
        }
        let (changed, count) = subsystem.ana.setState(state, group: group, listenerIndex: index)
        var notified = 0
        if changed {
            for controller in subsystem.controllers where controller.listenerIndex == index {
                controller.raiseAsyncEvent(Self.anaChangeEvent, enableBit: Self.anaChangeEnableBit)
                notified += 1
            }
            context.logger.notice("ANA state of group \(group) on \(listener) is now \(state.name) (change count \(count), \(notified) controller(s) notified)",
                                  metadata: ["subnqn": "\(subsystemNQN)"])
        }
        return ANAStateChange(subsystemNQN: subsystemNQN, listener: listener, group: group, state: state,
                              changed: changed, changeCount: count, controllersNotified: notified)
    }

    /// Changes who may use `subsystemNQN`. Hosts that lose access have every controller torn down
    /// and this returns once their connections are closed; their next Connect gets Connect Invalid
    /// Host, and discovery stops listing the subsystem to them (GENCTR changes, and discovery
    /// controllers that enabled the event get a Discovery Log Page Change notice).
    @discardableResult
    public func updateHostAccess(subsystemNQN: String, _ change: HostAccessChange) async throws(TargetControlError) -> HostAccessUpdate {
        let subsystem = try nvmSubsystem(subsystemNQN)
        for host in change.hosts where !Self.isPlausibleNQN(host) {
            throw .invalidHostNQN(host)
        }
        let discoveryHosts = context.discovery?.controllers ?? []
        let visibleBefore = discoveryHosts.map { subsystem.isHostAllowed($0.hostNQN) }
        // The closes are awaited below: collect the channels before the teardown forgets them.
        let channelsBefore = subsystem.controllers.map { ($0, $0.queueChannels) }
        let revoked: [Controller]
        do {
            revoked = try subsystem.updateHostAccess(change)
        } catch {
            throw .hostAccess(error)
        }
        for (controller, wasVisible) in zip(discoveryHosts, visibleBefore) where subsystem.isHostAllowed(controller.hostNQN) != wasVisible {
            controller.raiseAsyncEvent(Self.discoveryChangeEvent, enableBit: Self.discoveryChangeEnableBit)
        }
        let revokedIDs = Set(revoked.map(ObjectIdentifier.init))
        for (controller, channels) in channelsBefore where revokedIDs.contains(ObjectIdentifier(controller)) {
            for channel in channels { try? await channel.closeFuture.get() }
        }
        if !revoked.isEmpty {
            context.logger.notice("host access changed (\(change)): \(revoked.count) controller(s) disconnected",
                                  metadata: ["subnqn": "\(subsystemNQN)"])
        }
        let access = subsystem.hostAccess
        return HostAccessUpdate(subsystemNQN: subsystemNQN, allowedHosts: access.allowedHosts.map { $0.sorted() },
                                deniedHosts: access.deniedHosts.sorted(),
                                disconnected: revoked.map { .init(controllerID: $0.id, hostNQN: $0.hostNQN) }.sorted { $0.controllerID < $1.controllerID })
    }

    /// Adds an NVM subsystem to the running target: from now on hosts may connect to it on every
    /// NVM listener, and discovery lists it (GENCTR changes; discovery controllers of hosts that
    /// may see it and enabled the event get a Discovery Log Page Change notice). Its namespaces'
    /// reservation state is restored first (PTPL).
    @discardableResult
    public func addSubsystem(_ configuration: SubsystemConfiguration) throws(TargetControlError) -> Subsystem {
        guard Self.isPlausibleNQN(configuration.nqn) else { throw .invalidSubsystemNQN(configuration.nqn) }
        let subsystem = Subsystem(configuration: configuration, listenerCount: self.configuration.listeners.count)
        subsystem.prepareReservations(logger: context.logger)
        guard context.insert(subsystem) else { throw .subsystemExists(configuration.nqn) }
        for controller in context.discovery?.controllers ?? [] where subsystem.isHostAllowed(controller.hostNQN) {
            controller.raiseAsyncEvent(Self.discoveryChangeEvent, enableBit: Self.discoveryChangeEnableBit)
        }
        context.logger.info("subsystem added", metadata: ["subnqn": "\(configuration.nqn)", "namespaces": "\(subsystem.namespaceIDs.count)"])
        return subsystem
    }

    /// Removes an NVM subsystem: new Connects to it are refused at once, every controller is torn
    /// down and this returns once their connections are closed (commands in flight complete or
    /// die with the connection), and discovery stops listing it.
    @discardableResult
    public func removeSubsystem(nqn: String) async throws(TargetControlError) -> Int {
        guard let subsystem = context.remove(nqn: nqn) else {
            throw .unknownSubsystem(nqn, known: context.subsystems.keys.sorted())
        }
        let controllers = subsystem.controllers
        let channels = controllers.flatMap(\.queueChannels)
        for controller in controllers { controller.tearDown(reason: "subsystem removed") }
        for channel in channels { try? await channel.closeFuture.get() }
        for controller in context.discovery?.controllers ?? [] where subsystem.isHostAllowed(controller.hostNQN) {
            controller.raiseAsyncEvent(Self.discoveryChangeEvent, enableBit: Self.discoveryChangeEnableBit)
        }
        context.logger.info("subsystem removed", metadata: ["subnqn": "\(nqn)", "controllers": "\(controllers.count)"])
        return controllers.count
    }

    /// Counters per listener and per controller, ANA states per (group, listener) and the host
    /// lists of every subsystem.
    public func statistics() -> TargetStatistics {
        let listeners = context.listeners
        let names = listeners.map { ListenerAddress(host: $0.host, port: $0.port).description }
        let perListener = listeners.indices.map { index in
            ListenerStatistics(address: names[index], io: context.listenerCounters(index)?.total ?? IOCounters())
        }
        let perSubsystem = context.subsystems.values.sorted { $0.nqn < $1.nqn }.map { subsystem in
            let access = subsystem.hostAccess
            let groups = subsystem.ana.groupIDs.map { group in
                ANAGroupStatistics(group: group, namespaces: subsystem.ana.namespaceIDs[group] ?? [],
                                   paths: names.indices.map { .init(listener: names[$0], state: subsystem.ana.state(group: group, listenerIndex: $0).name) })
            }
            let controllers = subsystem.controllers.sorted { $0.id < $1.id }.map { c in
                ControllerStatistics(controllerID: c.id, hostNQN: c.hostNQN,
                                     listener: ListenerAddress(host: c.listener.host, port: c.listener.port).description,
                                     ioQueues: c.ioQueueCount, io: c.ioCounters)
            }
            return SubsystemStatistics(nqn: subsystem.nqn, anaChangeCount: subsystem.ana.currentChangeCount, anaGroups: groups,
                                       allowHosts: access.allowedHosts.map { $0.sorted() }, denyHosts: access.deniedHosts.sorted(),
                                       controllers: controllers)
        }
        return TargetStatistics(listeners: perListener, subsystems: perSubsystem)
    }

    // MARK: Lookups

    private func nvmSubsystem(_ nqn: String) throws(TargetControlError) -> Subsystem {
        guard let subsystem = context.subsystems[nqn] else {
            throw .unknownSubsystem(nqn, known: context.subsystems.keys.sorted())
        }
        return subsystem
    }

    /// The index of the NVM listener bound at `address` (its configured or advertised host, and
    /// its bound port).
    private func listenerIndex(_ address: ListenerAddress) throws(TargetControlError) -> Int {
        let listeners = context.listeners
        let index = listeners.firstIndex { l in
            l.port == address.port && (l.host == address.host || l.advertisedHost == address.host)
        }
        guard let index else {
            throw .unknownListener(address.description, known: listeners.map { ListenerAddress(host: $0.host, port: $0.port).description })
        }
        return index
    }

    /// An NQN is 1...223 bytes of printable ASCII (NVMe base spec 2.0 §4.5).
    static func isPlausibleNQN(_ nqn: String) -> Bool {
        !nqn.isEmpty && nqn.utf8.count <= 223 && nqn.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F }
    }
}

extension HostAccessChange {
    /// The host NQNs the change names.
    var hosts: [String] {
        switch self {
        case .allow(let h), .removeAllowed(let h), .deny(let h), .removeDenied(let h): [h]
        case .allowAnyHost: []
        case .replace(let allowed, let denied): Array(allowed ?? []) + Array(denied)
        }
    }
}

extension Controller {
    /// Read/write counters of the controller's I/O queues, closed ones included.
    public var ioCounters: IOCounters { ioCounterSet.total }

    /// The admin and I/O queue channels (empty once torn down).
    var queueChannels: [any Channel] {
        state.withLock { state in Array(state.ioQueues.values) + (state.adminQueue.map { [$0] } ?? []) }
    }
}

/// A listener as the control interface names it: `HOST:PORT` (`[v6]:PORT` for IPv6).
public struct ListenerAddress: Hashable, Sendable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Parses `HOST:PORT` or `[HOST]:PORT`; nil when malformed.
    public init?(parsing text: String) {
        let host: Substring, port: Substring
        if text.hasPrefix("["), let close = text.firstIndex(of: "]") {
            host = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":") else { return nil }
            port = rest.dropFirst()
        } else {
            guard let colon = text.lastIndex(of: ":"), !text[..<colon].contains(":") else { return nil }
            host = text[..<colon]
            port = text[text.index(after: colon)...]
        }
        guard !host.isEmpty, let p = Int(port), (1...65535).contains(p) else { return nil }
        self.init(host: String(host), port: p)
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// Why a control request was refused.
public enum TargetControlError: Error, Hashable, Sendable, CustomStringConvertible {
    /// No NVM subsystem with this NQN.
    case unknownSubsystem(String, known: [String])
    /// No NVM listener bound at this address.
    case unknownListener(String, known: [String])
    /// The subsystem has no namespace in this ANA group.
    case unknownANAGroup(UInt32, subsystem: String, known: [UInt32])
    /// Not a host NQN (1–223 printable ASCII characters).
    case invalidHostNQN(String)
    /// The change does not apply to the current host lists.
    case hostAccess(HostAccessError)
    /// A subsystem with this NQN is already served.
    case subsystemExists(String)
    /// Not a subsystem NQN (1–223 printable ASCII characters).
    case invalidSubsystemNQN(String)

    public var description: String {
        switch self {
        case .unknownSubsystem(let nqn, let known):
            "unknown subsystem NQN \(nqn) (served: \(known.isEmpty ? "none" : known.joined(separator: ", ")))"
        case .unknownListener(let address, let known):
            "unknown listener \(address) (listeners: \(known.isEmpty ? "none" : known.joined(separator: ", ")))"
        case .unknownANAGroup(let group, let nqn, let known):
            "unknown ANA group \(group) in \(nqn) (groups: \(known.map(String.init).joined(separator: ", ")))"
        case .invalidHostNQN(let nqn):
            "invalid host NQN \"\(nqn)\": 1 to 223 printable ASCII characters"
        case .hostAccess(let error):
            error.description
        case .subsystemExists(let nqn):
            "subsystem \(nqn) is already served"
        case .invalidSubsystemNQN(let nqn):
            "invalid subsystem NQN \"\(nqn)\": 1 to 223 printable ASCII characters"
        }
    }
}

/// What `setANAState` did.
public struct ANAStateChange: Hashable, Sendable, Codable {
    public var subsystemNQN: String
    public var listener: String
    public var group: UInt32
    public var state: String
    /// False when the path already had this state (nothing changed, no event).
    public var changed: Bool
    /// The subsystem's ANA change count after the call.
    public var changeCount: UInt64
    /// Controllers on the listener that were sent the ANA change event.
    public var controllersNotified: Int

    init(subsystemNQN: String, listener: ListenerAddress, group: UInt32, state: ANAState, changed: Bool, changeCount: UInt64, controllersNotified: Int) {
        self.subsystemNQN = subsystemNQN
        self.listener = listener.description
        self.group = group
        self.state = state.name
        self.changed = changed
        self.changeCount = changeCount
        self.controllersNotified = controllersNotified
    }
}

/// What `updateHostAccess` did: the lists now in force and the controllers disconnected.
public struct HostAccessUpdate: Hashable, Sendable, Codable {
    public struct DisconnectedController: Hashable, Sendable, Codable {
        public var controllerID: UInt16
        public var hostNQN: String
    }
    public var subsystemNQN: String
    /// nil = any host not denied.
    public var allowedHosts: [String]?
    public var deniedHosts: [String]
    public var disconnected: [DisconnectedController]

    enum CodingKeys: String, CodingKey { case subsystemNQN, allowedHosts, deniedHosts, disconnected }

    /// `allowedHosts` is written as null when any host may connect (not left out).
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(subsystemNQN, forKey: .subsystemNQN)
        try c.encode(allowedHosts, forKey: .allowedHosts)
        try c.encode(deniedHosts, forKey: .deniedHosts)
        try c.encode(disconnected, forKey: .disconnected)
    }
}

/// `NVMeTCPTarget.statistics()`.
public struct TargetStatistics: Hashable, Sendable, Codable {
    public var listeners: [ListenerStatistics]
    public var subsystems: [SubsystemStatistics]
}

/// Read/write commands that arrived on one NVM listener (all subsystems, closed queues included).
public struct ListenerStatistics: Hashable, Sendable, Codable {
    public var address: String
    public var io: IOCounters
}

public struct SubsystemStatistics: Hashable, Sendable, Codable {
    public var nqn: String
    public var anaChangeCount: UInt64
    public var anaGroups: [ANAGroupStatistics]
    /// nil = any host not denied.
    public var allowHosts: [String]?
    public var denyHosts: [String]
    public var controllers: [ControllerStatistics]

    enum CodingKeys: String, CodingKey { case nqn, anaChangeCount, anaGroups, allowHosts, denyHosts, controllers }

    /// `allowHosts` is written as null when any host may connect (not left out).
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(nqn, forKey: .nqn)
        try c.encode(anaChangeCount, forKey: .anaChangeCount)
        try c.encode(anaGroups, forKey: .anaGroups)
        try c.encode(allowHosts, forKey: .allowHosts)
        try c.encode(denyHosts, forKey: .denyHosts)
        try c.encode(controllers, forKey: .controllers)
    }
}

/// One ANA group: its namespaces and its state on every listener.
public struct ANAGroupStatistics: Hashable, Sendable, Codable {
    public struct Path: Hashable, Sendable, Codable {
        public var listener: String
        public var state: String
    }
    public var group: UInt32
    public var namespaces: [UInt32]
    public var paths: [Path]
}

public struct ControllerStatistics: Hashable, Sendable, Codable {
    public var controllerID: UInt16
    public var hostNQN: String
    /// The listener its admin queue connected through (its ANA path).
    public var listener: String
    public var ioQueues: Int
    public var io: IOCounters
}
