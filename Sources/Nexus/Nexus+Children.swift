#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Child management (Mayastor's AddChildNexus/RemoveChildNexus/FaultNexusChild and the
/// online/offline actions, research/mayastor.md §2, §5). Serialized per nexus; the data path
/// never waits for them.
extension Nexus {
    /// Adds a child: opens it, takes its reservation, and starts a full rebuild (it receives
    /// writes at once and serves reads once rebuilt). Adding an existing child is a no-op.
    public func addChild(uri: String) async throws(NexusError) {
        try await serialized { () async throws(NexusError) in
            try self.requireOpen()
            if self.core.withLock({ $0.index(of: uri) }) != nil { return }
            let device = try await self.openChecked(uri: uri)
            let now = Date()
            self.core.withLock { core in
                core.children.append(.init(uri: uri, uuid: NexusIdentity.childUUID(uri: uri), device: device,
                                           state: .offline, recordedHealthy: false, log: nil, since: now))
                core.healthWanted += 1
            }
            self.schedulePersist()
            self.watchNotices(device)
            self.logger.info("child added", metadata: ["child": "\(uri)"])
            await self.beginRebuild(uri, fromLog: false)
        }
    }

    /// Removes a child (its rebuild, if any, is cancelled). The last healthy child cannot be removed.
    public func removeChild(uri: String) async throws(NexusError) {
        try await serialized { () async throws(NexusError) in
            let (removed, version): (NexusCore.Child, UInt64) = try self.core.withLock { core throws(NexusError) in
                guard let i = core.index(of: uri) else { throw .notFound("child \(uri) is not in nexus \(self.uuid.lowercasedString)") }
                if core.children[i].recordedHealthy && core.isLastHealthy(uri) && core.lifecycle == .open {
                    throw .failedPrecondition("child \(uri) is the last healthy child of nexus \(self.uuid.lowercasedString)")
                }
                if core.children[i].state == .online && core.children.filter({ $0.state == .online }).count == 1 && core.lifecycle == .open {
                    throw .failedPrecondition("child \(uri) is the only online child of nexus \(self.uuid.lowercasedString)")
                }
                let removed = core.children.remove(at: i)
                core.readCursor = 0
                core.healthWanted += 1
                return (removed, core.healthWanted)
            }
            self.cancelRebuild(destination: uri)
            self.schedulePersist()
            await self.waitHealthDurable(version)
            await self.drain()
            if let device = removed.device { await device.close() }
            await removed.log?.discard()
            self.logger.info("child removed", metadata: ["child": "\(uri)"])
        }
    }

    /// Takes a child offline: it stops receiving I/O (its missed segments are logged for a
    /// partial rebuild) once the health record says it is unhealthy. Not the last online child.
    public func offlineChild(uri: String) async throws(NexusError) {
        try await retireByRequest(uri, to: .offline)
    }

    /// Faults a child by request (like an I/O error would). Not the last online child.
    public func faultChild(uri: String) async throws(NexusError) {
        try await retireByRequest(uri, to: .faulted(.byRequest))
    }

    private func retireByRequest(_ uri: String, to newState: ChildState) async throws(NexusError) {
        try await serialized { () async throws(NexusError) in
            try self.requireOpen()
            let (changed, version, device, wasRebuilding): (Bool?, UInt64, (any ChildDevice)?, Bool) = try self.core.withLock { core throws(NexusError) in
                guard let i = core.index(of: uri) else { throw .notFound("child \(uri) is not in nexus \(self.uuid.lowercasedString)") }
                let child = core.children[i]
                guard child.state.receivesWrites else { return (nil, 0, nil, false) }
                if child.state == .online && core.children.filter({ $0.state == .online }).count == 1 {
                    throw .failedPrecondition("child \(uri) is the only online child of nexus \(self.uuid.lowercasedString)")
                }
                let changed = core.retire(uri, to: newState, now: Date())
                return (changed, core.healthWanted, child.device, child.state == .rebuilding)
            }
            guard changed != nil else { return }
            if wasRebuilding { self.cancelRebuild(destination: uri) } else { self.startLog(for: uri) }
            self.schedulePersist()
            await self.waitHealthDurable(version)
            await self.drain()
            let close = self.core.withLock { core -> Bool in
                guard let i = core.index(of: uri), !core.children[i].state.receivesWrites else { return false }
                core.children[i].device = nil
                return true
            }
            if close, let device { await device.close() }
            self.logger.notice("child retired by request", metadata: ["child": "\(uri)", "state": "\(newState)"])
        }
    }

    /// Brings an offline or faulted child back: reopens it, takes its reservation, and rebuilds it —
    /// partially from its missed-segment log when that log is intact, else fully. A child that
    /// is still recorded healthy while no child is online (the nexus faulted with it) comes back
    /// online at once: every acknowledged write is on it.
    public func onlineChild(uri: String) async throws(NexusError) {
        try await serialized { () async throws(NexusError) in
            try self.requireOpen()
            let current: NexusCore.Child = try self.core.withLock { core throws(NexusError) in
                guard let i = core.index(of: uri) else { throw .notFound("child \(uri) is not in nexus \(self.uuid.lowercasedString)") }
                return core.children[i]
            }
            if current.state.receivesWrites { return }
            if let old = current.device {
                self.core.withLock { core in
                    if let i = core.index(of: uri), core.children[i].device === old { core.children[i].device = nil }
                }
                await old.close()
            }
            let device = try await self.openChecked(uri: uri)
            self.watchNotices(device)
            let direct = self.core.withLock { core -> Bool in
                guard let i = core.index(of: uri) else { return false }
                core.children[i].device = device
                let noneOnline = !core.children.contains { $0.state == .online }
                if noneOnline && core.children[i].recordedHealthy {
                    core.children[i].state = .online
                    core.children[i].since = Date()
                    return true
                }
                return false
            }
            if direct {
                self.logger.notice("last healthy child back online; nexus serves again", metadata: ["child": "\(uri)"])
                await self.discardLog(of: uri)
                await self.setFrontendHeld(false)
                return
            }
            await self.beginRebuild(uri, fromLog: true)
        }
    }

    // MARK: Helpers

    /// Runs a management operation after the ones before it.
    func serialized(_ body: @escaping @Sendable () async throws(NexusError) -> Void) async throws(NexusError) {
        do {
            try await management.run { try await body() }
        } catch let error as NexusError {
            throw error
        } catch {
            throw .unavailable("\(error)")
        }
    }

    func requireOpen() throws(NexusError) {
        let state = core.withLock { $0.lifecycle }
        guard state == .open else {
            throw .failedPrecondition("nexus \(uuid.lowercasedString) is \(self.state.rawValue)")
        }
    }

    /// Opens and fences a child and checks that it can hold the volume.
    func openChecked(uri: String) async throws(NexusError) -> any ChildDevice {
        let device = try await Self.openAndFence(uri: uri, identity: identity, configuration: configuration,
                                                 connector: connector, preempted: { [self] at in notePreempt(at) }).get()
        guard device.blockSize == blockSize else {
            await device.close()
            throw .invalidArgument("child \(uri) has \(device.blockSize)-byte blocks, the nexus \(blockSize)")
        }
        guard device.byteCountValue >= blockCount * UInt64(blockSize) else {
            await device.close()
            throw .invalidArgument("child \(uri) holds \(device.byteCountValue) bytes, less than the nexus size \(blockCount * UInt64(blockSize))")
        }
        return device
    }
}

extension UUID {
    var lowercasedString: String { uuidString.lowercased() }
}
