#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import StoragePool

/// Input checks shared by the replica calls (before anything is touched).
enum ReplicaValidation {
    /// A replica UUID as the API gives it.
    static func uuid(_ text: String) throws(IOEngineError) -> UUID {
        guard !text.isEmpty else { throw .invalidArgument("replica uuid is empty") }
        guard let uuid = UUID(uuidString: text) else { throw .invalidArgument("replica uuid '\(text)' is not a UUID") }
        return uuid
    }

    /// Allowed host NQNs: 1…223 printable ASCII characters each, at most 256, duplicates dropped.
    static func hosts(_ hosts: [String], replica uuid: UUID) throws(IOEngineError) -> [String] {
        var unique: [String] = []
        for host in hosts {
            guard !host.isEmpty, host.utf8.count <= 223, host.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
                throw .invalidArgument("replica \(uuid.lowercased): allowed host '\(host)' is not an NQN (1 to 223 printable ASCII characters)")
            }
            if !unique.contains(host) { unique.append(host) }
        }
        guard unique.count <= 256 else {
            throw .invalidArgument("replica \(uuid.lowercased): \(unique.count) allowed hosts, at most 256")
        }
        return unique
    }
}

extension EngineCore {
    private func poolCall<T>(_ body: () async throws(PoolError) -> T) async throws(IOEngineError) -> T {
        do {
            return try await body()
        } catch {
            throw IOEngineError(error)
        }
    }

    func createReplica(uuid text: String, pool poolName: String, name: String, sizeBytes: UInt64, thin: Bool, share: Bool,
                       allowedHosts: [String]) async throws(IOEngineError) -> ReplicaView
    {
        let uuid = try ReplicaValidation.uuid(text)
        guard !poolName.isEmpty else { throw .invalidArgument("replica \(uuid.lowercased): pool name is empty") }
        guard sizeBytes > 0 else { throw .invalidArgument("replica \(uuid.lowercased) size 0 bytes: must be a non-zero multiple of the block size") }
        let hosts = try ReplicaValidation.hosts(allowedHosts, replica: uuid)
        let replicaName = name.isEmpty ? uuid.lowercased : name
        return try await run { () async throws(IOEngineError) -> ReplicaView in
            let pool = try importedPool(named: poolName)
            let blockSize = UInt64(pool.info.blockSize)
            guard sizeBytes % blockSize == 0 else {
                throw .invalidArgument("replica \(uuid.lowercased) size \(sizeBytes) bytes: must be a multiple of pool '\(poolName)' block size \(blockSize)")
            }
            if let elsewhere = try? locate(uuid), elsewhere.name != poolName {
                throw .alreadyExists("replica \(uuid.lowercased) already exists in pool '\(elsewhere.name)'")
            }
            var replica = try await poolCall { () async throws(PoolError) in
                try await pool.createReplica(uuid: uuid, name: replicaName, sizeBytes: sizeBytes, thin: thin)
            }
            if share {
                replica = try await shareLocked(pool: pool, poolName: poolName, replica: replica, hosts: hosts)
            }
            logger.info("replica created", metadata: [
                "replica": "\(uuid.lowercased)", "pool": "\(poolName)", "size": "\(sizeBytes)", "thin": "\(thin)", "shared": "\(replica.shared)",
            ])
            return view(replica, poolName: poolName, pool: pool)
        }
    }

    func destroyReplica(uuid text: String) async throws(IOEngineError) {
        let uuid = try ReplicaValidation.uuid(text)
        try await run { () async throws(IOEngineError) in
            let (poolName, pool, _) = try locate(uuid)
            await shares.stop(uuid)
            try await poolCall { () async throws(PoolError) in try await pool.destroyReplica(uuid: uuid) }
            logger.info("replica destroyed", metadata: ["replica": "\(uuid.lowercased)", "pool": "\(poolName)"])
        }
    }

    func resizeReplica(uuid text: String, sizeBytes: UInt64) async throws(IOEngineError) -> ReplicaView {
        let uuid = try ReplicaValidation.uuid(text)
        return try await run { () async throws(IOEngineError) -> ReplicaView in
            let (poolName, pool, current) = try locate(uuid)
            let blockSize = UInt64(pool.info.blockSize)
            guard sizeBytes > 0, sizeBytes % blockSize == 0 else {
                throw .invalidArgument("replica \(uuid.lowercased) size \(sizeBytes) bytes: must be a non-zero multiple of pool '\(poolName)' block size \(blockSize)")
            }
            guard sizeBytes >= current.sizeBytes else {
                throw .invalidArgument("replica \(uuid.lowercased) cannot shrink from \(current.sizeBytes) to \(sizeBytes) bytes (resize only grows)")
            }
            if sizeBytes == current.sizeBytes { return view(current, poolName: poolName, pool: pool) }
            let served = shares.isServed(uuid)
            if served {
                let connected = shares.connectedControllers(uuid)
                guard connected == 0 else {
                    throw .failedPrecondition("replica \(uuid.lowercased) is shared and \(connected) host controller(s) are connected: "
                        + "disconnect them (or unshare it) before resizing")
                }
            }
            let resized = try await poolCall { () async throws(PoolError) in try await pool.resizeReplica(uuid: uuid, sizeBytes: sizeBytes) }
            if served {
                // The namespace's size is fixed when the subsystem is made: make it again.
                await shares.stop(uuid)
                try await shares.serve(pool: pool, poolName: poolName, uuid: uuid, allowedHosts: resized.allowedHosts)
            }
            logger.info("replica resized", metadata: ["replica": "\(uuid.lowercased)", "from": "\(current.sizeBytes)", "to": "\(sizeBytes)"])
            return view(resized, poolName: poolName, pool: pool)
        }
    }

    func replica(uuid text: String) throws(IOEngineError) -> ReplicaView {
        let uuid = try ReplicaValidation.uuid(text)
        let (poolName, pool, replica) = try locate(uuid)
        return view(replica, poolName: poolName, pool: pool)
    }

    func replicas(pool poolName: String) throws(IOEngineError) -> [ReplicaView] {
        if !poolName.isEmpty {
            guard let pool = try slot(named: poolName).pool else { return [] }
            return pool.replicas().map { view($0, poolName: poolName, pool: pool) }
        }
        return slots.flatMap { name, slot in
            (slot.pool.map { pool in pool.replicas().map { view($0, poolName: name, pool: pool) } }) ?? []
        }
    }

    func shareReplica(uuid text: String, allowedHosts: [String]) async throws(IOEngineError) -> ReplicaView {
        let uuid = try ReplicaValidation.uuid(text)
        let hosts = try ReplicaValidation.hosts(allowedHosts, replica: uuid)
        return try await run { () async throws(IOEngineError) -> ReplicaView in
            let (poolName, pool, replica) = try locate(uuid)
            let shared = try await shareLocked(pool: pool, poolName: poolName, replica: replica, hosts: hosts)
            return view(shared, poolName: poolName, pool: pool)
        }
    }

    /// Records the share (shared, `hosts`) in the pool, then serves it (or replaces its hosts).
    private func shareLocked(pool: Pool, poolName: String, replica: ReplicaInfo, hosts: [String]) async throws(IOEngineError)
        -> ReplicaInfo
    {
        let uuid = replica.uuid
        let recorded = try await poolCall { () async throws(PoolError) in
            try await pool.setShare(uuid: uuid, shared: true, allowedHosts: hosts)
        }
        try await shares.serve(pool: pool, poolName: poolName, uuid: uuid, allowedHosts: hosts)
        return recorded
    }

    func unshareReplica(uuid text: String) async throws(IOEngineError) -> ReplicaView {
        let uuid = try ReplicaValidation.uuid(text)
        return try await run { () async throws(IOEngineError) -> ReplicaView in
            let (poolName, pool, replica) = try locate(uuid)
            let recorded = try await poolCall { () async throws(PoolError) in
                try await pool.setShare(uuid: uuid, shared: false, allowedHosts: replica.allowedHosts)
            }
            await shares.stop(uuid)
            return view(recorded, poolName: poolName, pool: pool)
        }
    }

    func setAllowedHosts(uuid text: String, allowedHosts: [String]) async throws(IOEngineError) -> ReplicaView {
        let uuid = try ReplicaValidation.uuid(text)
        let hosts = try ReplicaValidation.hosts(allowedHosts, replica: uuid)
        return try await run { () async throws(IOEngineError) -> ReplicaView in
            let (poolName, pool, replica) = try locate(uuid)
            let recorded = try await poolCall { () async throws(PoolError) in
                try await pool.setShare(uuid: uuid, shared: replica.shared, allowedHosts: hosts)
            }
            if replica.shared {
                try await shares.serve(pool: pool, poolName: poolName, uuid: uuid, allowedHosts: hosts)
            }
            logger.info("replica allowed hosts set", metadata: [
                "replica": "\(uuid.lowercased)", "hosts": "\(hosts.isEmpty ? "any" : hosts.joined(separator: ","))",
            ])
            return view(recorded, poolName: poolName, pool: pool)
        }
    }

    func allocatedRanges(uuid text: String) throws(IOEngineError) -> (size: UInt64, ranges: [ByteRange]) {
        let uuid = try ReplicaValidation.uuid(text)
        let (_, pool, replica) = try locate(uuid)
        do {
            return (replica.sizeBytes, try pool.allocatedRanges(uuid: uuid))
        } catch {
            throw IOEngineError(error)
        }
    }
}
