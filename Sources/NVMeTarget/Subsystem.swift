import NIOCore
import NVMe
import Synchronization

/// An NVM subsystem (or the discovery subsystem) at run time: its namespaces, which hosts may
/// connect, and the controllers currently associated with it (NVMe base spec 2.0 §2.4; NVMe over
/// Fabrics spec 1.1 §4.1 for the discovery subsystem).
public final class Subsystem: Sendable {
    /// What kind of subsystem this is.
    public enum Kind: Sendable { case nvm, discovery }

    /// The well-known discovery subsystem NQN.
    public static let discoveryNQN = "nqn.2014-08.org.nvmexpress.discovery"

    public let nqn: String
    public let kind: Kind
    public let serialNumber: String
    public let modelNumber: String
    public let controllerIDRange: ClosedRange<UInt16>
    /// Namespaces by ID; fixed for the subsystem's life.
    let namespaces: [UInt32: Namespace]
    /// Active namespace IDs, ascending.
    let namespaceIDs: [UInt32]
    /// Whether any namespace has a volatile write cache (Identify VWC).
    let hasVolatileWriteCache: Bool
    /// ANA groups and the state of each on every listener (HostAccess.swift has the host rules).
    public let ana: ANAGroupTable

    struct State {
        var access: HostAccessPolicy
        /// Incremented on every host access change (the discovery log's generation counter).
        var accessGeneration: UInt64 = 0
        var controllers: [UInt16: Controller] = [:]
        var nextControllerID: UInt16
    }
    let state: Mutex<State>

    /// `listenerCount`: the target's NVM listeners, one ANA path each.
    init(configuration: SubsystemConfiguration, listenerCount: Int = 1) {
        nqn = configuration.nqn
        kind = .nvm
        serialNumber = configuration.serialNumber ?? NamespaceIdentity.serialNumber(subsystemNQN: configuration.nqn)
        modelNumber = configuration.modelNumber
        controllerIDRange = configuration.controllerIDRange
        var namespaces: [UInt32: Namespace] = [:]
        for ns in configuration.namespaces {
            precondition(namespaces[ns.namespaceID] == nil, "duplicate namespace ID \(ns.namespaceID) in \(configuration.nqn)")
            namespaces[ns.namespaceID] = Namespace(
                id: ns.namespaceID, device: ns.device,
                identity: ns.identity ?? .derived(subsystemNQN: configuration.nqn, namespaceID: ns.namespaceID),
                anaGroupID: ns.anaGroupID, reservationState: ns.reservationState)
        }
        self.namespaces = namespaces
        namespaceIDs = namespaces.keys.sorted()
        hasVolatileWriteCache = namespaces.values.contains { $0.device.hasVolatileWriteCache }
        ana = ANAGroupTable(groupOf: namespaces.mapValues(\.anaGroupID), listenerCount: listenerCount)
        state = Mutex(State(access: HostAccessPolicy(allowedHosts: configuration.allowedHosts, deniedHosts: configuration.deniedHosts),
                            nextControllerID: configuration.controllerIDRange.lowerBound))
    }

    /// The discovery subsystem.
    init(discoveryControllerIDRange: ClosedRange<UInt16>) {
        nqn = Self.discoveryNQN
        kind = .discovery
        serialNumber = NamespaceIdentity.serialNumber(subsystemNQN: Self.discoveryNQN)
        modelNumber = "Halyard Discovery"
        controllerIDRange = discoveryControllerIDRange
        namespaces = [:]
        namespaceIDs = []
        hasVolatileWriteCache = false
        ana = ANAGroupTable(groupOf: [:], listenerCount: 1)
        state = Mutex(State(access: HostAccessPolicy(), nextControllerID: discoveryControllerIDRange.lowerBound))
    }

    public func namespace(_ id: UInt32) -> Namespace? { namespaces[id] }

    /// Whether `hostNQN` may connect (the discovery subsystem admits every host).
    public func isHostAllowed(_ hostNQN: String) -> Bool {
        kind == .discovery || state.withLock { $0.access.permits(hostNQN) }
    }

    /// Replaces the allowed-host list (nil = any host), keeping the deny list. Returns the
    /// controllers of hosts that lost access, already torn down (their connections closing).
    @discardableResult
    public func setAllowedHosts(_ hosts: Set<String>?) -> [Controller] {
        let denied = state.withLock { $0.access.deniedHosts }
        return (try? updateHostAccess(.replace(allowed: hosts, denied: denied))) ?? []
    }

    /// The allowed-host list (nil = any host).
    public var allowedHosts: Set<String>? { state.withLock { $0.access.allowedHosts } }

    /// Controllers currently associated with the subsystem.
    public var controllers: [Controller] { state.withLock { Array($0.controllers.values) } }

    /// Why a controller could not be made.
    enum AdmissionRefusal: Error { case hostNotAllowed, noControllerIDFree }

    /// Allocates a controller ID and registers a controller made by `make` for `hostNQN`. The host
    /// is checked under the same lock a host access change takes, so a host denied concurrently
    /// either is refused here or has the new controller torn down by that change.
    func allocateController(hostNQN: String, _ make: (UInt16) -> Controller) -> Result<Controller, AdmissionRefusal> {
        state.withLock { state in
            guard kind == .discovery || state.access.permits(hostNQN) else { return .failure(.hostNotAllowed) }
            let range = controllerIDRange
            let span = Int(range.upperBound) - Int(range.lowerBound) + 1
            guard state.controllers.count < span else { return .failure(.noControllerIDFree) }
            // Hand out IDs in rotation so a just-freed ID is not reused at once (a host may still
            // hold the old controller in its tables).
            var candidate = state.nextControllerID
            while state.controllers[candidate] != nil {
                candidate = candidate == range.upperBound ? range.lowerBound : candidate + 1
            }
            state.nextControllerID = candidate == range.upperBound ? range.lowerBound : candidate + 1
            let controller = make(candidate)
            state.controllers[candidate] = controller
            return .success(controller)
        }
    }

    /// The live controller with `id` that belongs to `hostNQN`, for an I/O queue Connect.
    func controller(id: UInt16, hostNQN: String, hostID: [UInt8]) -> Controller? {
        state.withLock { state in
            guard let c = state.controllers[id], c.hostNQN == hostNQN, c.hostID == hostID else { return nil }
            return c
        }
    }

    func removeController(_ controller: Controller) {
        state.withLock { state in
            if state.controllers[controller.id] === controller { state.controllers[controller.id] = nil }
        }
    }
}
