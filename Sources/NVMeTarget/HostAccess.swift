/// Which hosts may use one NVM subsystem (NVMe over Fabrics spec 1.1 §3.3: a Connect from a host
/// that may not is refused with Connect Invalid Host): an allow list — or any host when there is
/// none — and a deny list. Deny wins. Every rule and every change is here.
public struct HostAccessPolicy: Hashable, Sendable {
    /// Host NQNs that may connect; nil = any host not denied.
    public private(set) var allowedHosts: Set<String>?
    /// Host NQNs that may never connect, whatever the allow list says.
    public private(set) var deniedHosts: Set<String>

    public init(allowedHosts: Set<String>? = nil, deniedHosts: Set<String> = []) {
        self.allowedHosts = allowedHosts
        self.deniedHosts = deniedHosts
    }

    /// Whether `hostNQN` may connect.
    public func permits(_ hostNQN: String) -> Bool {
        !deniedHosts.contains(hostNQN) && (allowedHosts?.contains(hostNQN) ?? true)
    }

    /// Applies `change`; throws `.anyHostAllowed` for `.removeAllowed` while any host is allowed
    /// (there is no list to remove the host from).
    public mutating func apply(_ change: HostAccessChange) throws(HostAccessError) {
        switch change {
        case .allow(let host):
            deniedHosts.remove(host)
            allowedHosts?.insert(host)
        case .removeAllowed(let host):
            guard allowedHosts != nil else { throw .anyHostAllowed(host) }
            allowedHosts?.remove(host)
        case .deny(let host):
            deniedHosts.insert(host)
        case .removeDenied(let host):
            deniedHosts.remove(host)
        case .allowAnyHost:
            allowedHosts = nil
        case .replace(let allowed, let denied):
            allowedHosts = allowed
            deniedHosts = denied
        }
    }
}

/// One change to a subsystem's host access.
public enum HostAccessChange: Hashable, Sendable {
    /// The host may connect: taken off the deny list and, when an allow list is in force, put on it.
    case allow(String)
    /// The host leaves the allow list (an error while any host is allowed).
    case removeAllowed(String)
    /// The host is put on the deny list: it may no longer connect, its controllers are disconnected.
    case deny(String)
    /// The host leaves the deny list.
    case removeDenied(String)
    /// No allow list: any host not denied may connect.
    case allowAnyHost
    /// Both lists replaced (allowed nil = any host).
    case replace(allowed: Set<String>?, denied: Set<String>)
}

/// A host access change that cannot apply to the current lists.
public enum HostAccessError: Error, Hashable, Sendable, CustomStringConvertible {
    /// `.removeAllowed(host)` while the subsystem allows any host.
    case anyHostAllowed(String)

    public var description: String {
        switch self {
        case .anyHostAllowed(let host): "the subsystem allows any host: there is no allow list to remove \(host) from"
        }
    }
}

extension Subsystem {
    /// The current allow and deny lists.
    public var hostAccess: HostAccessPolicy { state.withLock { $0.access } }

    /// Incremented by every host access change that changed the lists.
    var hostAccessGeneration: UInt64 { state.withLock { $0.accessGeneration } }

    /// Applies `change`. Every controller of a host that no longer has access is torn down at once
    /// — its admin and I/O queues closed, its controller ID freed — and returned; its new Connects
    /// get Connect Invalid Host. The check of `allocateController` takes the same lock, so no
    /// controller of a denied host survives a concurrent Connect.
    @discardableResult
    public func updateHostAccess(_ change: HostAccessChange) throws(HostAccessError) -> [Controller] {
        precondition(kind == .nvm, "the discovery subsystem admits every host")
        let revoked = try state.withLock { state throws(HostAccessError) -> [Controller] in
            var access = state.access
            try access.apply(change)
            guard access != state.access else { return [] }
            state.access = access
            state.accessGeneration &+= 1
            return state.controllers.values.filter { !access.permits($0.hostNQN) }
        }
        for controller in revoked { controller.tearDown(reason: "host access revoked") }
        return revoked
    }
}
