#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import StoragePool

/// What CreatePool asks for, validated.
struct PoolCreateRequest: Sendable {
    var name: String
    var disk: String
    var uuid: UUID?
    /// 0: the disk must exist.
    var sizeBytes: UInt64
    var blockSize: Int
    var extentSize: UInt64

    /// Checks every field before anything is touched (defaults: block size 4096, extent 1 MiB).
    init(name: String, disk: String, uuid: String, sizeBytes: UInt64, blockSize: UInt32, extentSize: UInt32) throws(IOEngineError) {
        guard !name.isEmpty else { throw .invalidArgument("pool name is empty") }
        guard name.utf8.count <= 128 else { throw .invalidArgument("pool name '\(name)' is \(name.utf8.count) bytes: at most 128") }
        guard !disk.isEmpty else { throw .invalidArgument("pool '\(name)': disk is empty") }
        self.name = name
        self.disk = disk
        if uuid.isEmpty {
            self.uuid = nil
        } else {
            guard let parsed = UUID(uuidString: uuid) else { throw .invalidArgument("pool '\(name)' uuid '\(uuid)' is not a UUID") }
            self.uuid = parsed
        }
        let block = blockSize == 0 ? 4096 : Int(blockSize)
        guard block == 512 || block == 4096 else {
            throw .invalidArgument("pool '\(name)' block size \(blockSize): must be 512 or 4096")
        }
        self.blockSize = block
        let extent = extentSize == 0 ? PoolCreateOptions.defaultExtentSize : UInt64(extentSize)
        guard extent >= PoolCreateOptions.minimumExtentSize, extent <= PoolCreateOptions.maximumExtentSize, extent & (extent - 1) == 0
        else {
            throw .invalidArgument("pool '\(name)' extent size \(extentSize) bytes: must be a power of two from 64 KiB to 64 MiB")
        }
        self.extentSize = extent
        guard sizeBytes % 4096 == 0 else {
            throw .invalidArgument("pool '\(name)' size \(sizeBytes) bytes: must be a multiple of 4096")
        }
        self.sizeBytes = sizeBytes
    }
}

extension EngineCore {
    // MARK: Start, stop

    /// Imports every pool of `pools.json` and of ``IOEngineConfiguration/importDisks``; a pool
    /// that fails stays listed as unavailable (FAULTED with the reason). Then serves every
    /// replica recorded as shared.
    func startUp() async throws(IOEngineError) {
        try await run { () async throws(IOEngineError) in
            let recorded = try await loadRegistry()
            var disks = recorded.map { ($0.disk, $0.name as String?) }
            for disk in configuration.importDisks where !disks.contains(where: { Self.canonical($0.0) == Self.canonical(disk) }) {
                disks.append((disk, nil))
            }
            for (disk, recordedName) in disks {
                do throws(IOEngineError) {
                    let pool = try await openPool(disk: disk)
                    let name = pool.info.name
                    if (try? slot(named: name)) != nil {
                        await pool.export()
                        throw .alreadyExists("pool name '\(name)' is already used by the pool on '\(try slot(named: name).disk)'")
                    }
                    setSlot(.imported(pool), name: name)
                    logger.info("pool imported at start", metadata: ["pool": "\(name)", "disk": "\(disk)", "state": "\(pool.info.state)"])
                } catch {
                    let name = recordedName ?? disk
                    logger.error("pool could not be imported at start; listed as faulted",
                                 metadata: ["pool": "\(name)", "disk": "\(disk)", "reason": "\(error.message)"])
                    if (try? slot(named: name)) == nil {
                        setSlot(.unavailable(name: name, disk: disk, reason: error.message), name: name, recorded: recordedName != nil)
                    }
                }
            }
            try await saveRegistry()
            for (name, slot) in slots {
                guard let pool = slot.pool else { continue }
                await serveShared(pool: pool, name: name)
            }
        }
    }

    /// Stops serving every replica (their recorded share state unchanged) and exports every pool.
    func shutDown() async {
        _ = try? await run { () async throws(IOEngineError) in
            for (name, slot) in slots {
                guard let pool = slot.pool else { continue }
                for replica in pool.replicas() { await shares.stop(replica.uuid) }
                await pool.export()
                setSlot(nil, name: name)
                logger.info("pool exported (engine stopping)", metadata: ["pool": "\(name)"])
            }
        }
        try? await blockingPool.shutdownGracefully()
    }

    /// Serves the pool's replicas recorded as shared (failures are logged; the pool stays).
    func serveShared(pool: Pool, name: String) async {
        for replica in pool.replicas() where replica.shared {
            do throws(IOEngineError) {
                try await shares.serve(pool: pool, poolName: name, uuid: replica.uuid, allowedHosts: replica.allowedHosts)
            } catch {
                logger.error("replica recorded as shared could not be shared",
                             metadata: ["pool": "\(name)", "replica": "\(replica.uuid.lowercased)", "reason": "\(error.message)"])
            }
        }
    }

    /// Runs a change in the engine's serial order.
    func run<T: Sendable>(_ body: () async throws(IOEngineError) -> T) async throws(IOEngineError) -> T {
        do {
            return try await serializer.run { () async throws -> T in try await body() }
        } catch let error as IOEngineError {
            throw error
        } catch {
            throw .internal("\(error)")
        }
    }

    private func openPool(disk: String) async throws(IOEngineError) -> Pool {
        do {
            return try await Pool.import(path: disk, ioThreads: configuration.poolIOThreads, logger: logger)
        } catch {
            throw IOEngineError(error)
        }
    }

    // MARK: Pool API

    func createPool(_ request: PoolCreateRequest) async throws(IOEngineError) -> PoolInfo {
        try await run { () async throws(IOEngineError) -> PoolInfo in
            if let existing = try? slot(named: request.name) {
                return try identicalPool(existing, request)
            }
            if let (other, _) = slot(onDisk: request.disk) {
                throw .alreadyExists("disk '\(request.disk)' already holds pool '\(other)'")
            }
            let options = PoolCreateOptions(name: request.name, uuid: request.uuid, blockSize: request.blockSize,
                                            extentSize: request.extentSize,
                                            createFileSize: request.sizeBytes == 0 ? nil : request.sizeBytes)
            let pool: Pool
            do throws(PoolError) {
                pool = try await Pool.create(path: request.disk, options: options, ioThreads: configuration.poolIOThreads, logger: logger)
            } catch {
                // A label found on the disk: the pool exists (exported), which is ALREADY_EXISTS.
                if case .failedPrecondition(let message) = error, message.contains("already holds pool") {
                    throw .alreadyExists(message)
                }
                throw IOEngineError(error)
            }
            setSlot(.imported(pool), name: request.name)
            try await saveRegistry()
            logger.info("pool created", metadata: ["pool": "\(request.name)", "disk": "\(request.disk)"])
            return pool.info
        }
    }

    /// The existing pool when `request` asks for exactly it; ALREADY_EXISTS otherwise.
    private func identicalPool(_ slot: PoolSlot, _ request: PoolCreateRequest) throws(IOEngineError) -> PoolInfo {
        guard let pool = slot.pool else {
            throw .alreadyExists("pool '\(request.name)' already exists on '\(slot.disk)' (unavailable: "
                + "\(slot.info.state)); export it to forget it")
        }
        let info = pool.info
        var differences: [String] = []
        if Self.canonical(info.path) != Self.canonical(request.disk) { differences.append("disk '\(info.path)', requested '\(request.disk)'") }
        if let uuid = request.uuid, uuid != info.uuid { differences.append("uuid \(info.uuid.lowercased), requested \(uuid.lowercased)") }
        if info.blockSize != request.blockSize { differences.append("block size \(info.blockSize), requested \(request.blockSize)") }
        if info.extentSize != request.extentSize { differences.append("extent size \(info.extentSize), requested \(request.extentSize)") }
        if request.sizeBytes != 0 {
            var st = stat()
            if stat(info.path, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG, UInt64(st.st_size) != request.sizeBytes {
                differences.append("size \(st.st_size) bytes, requested \(request.sizeBytes)")
            }
        }
        guard differences.isEmpty else {
            throw .alreadyExists("pool '\(request.name)' already exists with other parameters: " + differences.joined(separator: "; "))
        }
        return info
    }

    func importPool(disk: String) async throws(IOEngineError) -> PoolInfo {
        guard !disk.isEmpty else { throw .invalidArgument("import: disk is empty") }
        return try await run { () async throws(IOEngineError) -> PoolInfo in
            let existing = slot(onDisk: disk)
            if let existing, let pool = existing.slot.pool { return pool.info }
            let pool = try await openPool(disk: disk)
            let name = pool.info.name
            if let clash = try? slot(named: name), existing?.name != name {
                await pool.export()
                throw .alreadyExists("pool '\(name)' on '\(disk)': the name is already used by the pool on '\(clash.disk)'")
            }
            if let existing { setSlot(nil, name: existing.name) }
            setSlot(.imported(pool), name: name)
            try await saveRegistry()
            await serveShared(pool: pool, name: name)
            logger.info("pool imported", metadata: ["pool": "\(name)", "disk": "\(disk)", "state": "\(pool.info.state)"])
            return pool.info
        }
    }

    func exportPool(name: String) async throws(IOEngineError) -> PoolInfo {
        guard !name.isEmpty else { throw .invalidArgument("export: pool name is empty") }
        return try await run { () async throws(IOEngineError) -> PoolInfo in
            let slot = try slot(named: name)
            let info = slot.info
            if let pool = slot.pool {
                for replica in pool.replicas() { await shares.stop(replica.uuid) }
                await pool.export()
            }
            setSlot(nil, name: name)
            try await saveRegistry()
            logger.info("pool exported", metadata: ["pool": "\(name)", "disk": "\(info.path)"])
            return info
        }
    }

    func destroyPool(name: String, force: Bool) async throws(IOEngineError) {
        guard !name.isEmpty else { throw .invalidArgument("destroy: pool name is empty") }
        try await run { () async throws(IOEngineError) in
            let slot = try slot(named: name)
            guard let pool = slot.pool else {
                throw .unavailable("pool '\(name)' on '\(slot.disk)' is unavailable (\(slot.info.state)): it cannot be destroyed; "
                    + "export it to forget it")
            }
            let replicas = pool.replicas()
            if !replicas.isEmpty && !force {
                throw .failedPrecondition("pool '\(name)' holds \(replicas.count) replica(s): destroy them first, or force")
            }
            for replica in replicas { await shares.stop(replica.uuid) }
            do throws(PoolError) {
                try await pool.destroy(force: force)
            } catch {
                // The pool is shut down whatever happened: forget it, and say why.
                setSlot(nil, name: name)
                try? await saveRegistry()
                throw IOEngineError(error)
            }
            setSlot(nil, name: name)
            try await saveRegistry()
            logger.info("pool destroyed", metadata: ["pool": "\(name)", "replicas": "\(replicas.count)"])
        }
    }
}
