import Foundation
import NIOCore
import Storage
@testable import StoragePool
import Testing

@Suite("Pool create, import, export, destroy")
struct PoolLifecycleTests {
    @Test("create on a new sparse file, export, import: same identity, replicas and data")
    func createExportImport() async throws {
        try await TemporaryDirectory.with { dir in
            let path = dir.file("pool.img")
            let uuid = UUID()
            let pool = try await Pool.create(path: path, options: PoolCreateOptions(name: "p1", uuid: uuid, createFileSize: 64 << 20), ioThreads: 2)
            var info = pool.info
            #expect(info.name == "p1" && info.uuid == uuid && info.path == path && info.state == .online)
            #expect(info.blockSize == 4096 && info.extentSize == 1 << 20)
            #expect(info.capacityBytes == 56 << 20)
            #expect(info.usedBytes == 0 && info.freeBytes == info.capacityBytes && info.committedBytes == 0 && info.replicaCount == 0)
            let r = UUID()
            let created = try await pool.createReplica(uuid: r, name: "r1", sizeBytes: 8 << 20, thin: true)
            #expect(created == ReplicaInfo(uuid: r, name: "r1", sizeBytes: 8 << 20, thin: true, allocatedBytes: 0, shared: false, allowedHosts: []))
            let device = try pool.device(uuid: r)
            #expect(device.blockSize == 4096 && device.blockCount == 2048)
            try await device.writeBytes(Pattern.blocks(tag: 1, lba: 300, count: 4, size: 4096), at: 300, fua: true)
            _ = try await pool.setShare(uuid: r, shared: true, allowedHosts: ["nqn.2014-08.org.nvmexpress:uuid:h1"])
            try await pool.saveReservationState(uuid: r, blob: [9, 8, 7])
            try await pool.setProperties(uuid: r, blob: Array("labels".utf8))
            await pool.export()
            await pool.export()  // idempotent
            await expectPoolError(.failedPrecondition("pool 'p1' has been exported or destroyed")) { () async throws(PoolError) in
                try await pool.createReplica(uuid: UUID(), name: "late", sizeBytes: 4096, thin: true)
            }
            await #expect(throws: BlockDeviceError.closed) { try await device.readBytes(at: 0, blocks: 1) }

            let again = try await Pool.import(path: path, ioThreads: 2)
            info = again.info
            #expect(info.name == "p1" && info.uuid == uuid && info.state == .online)
            #expect(info.usedBytes == 1 << 20 && info.freeBytes == info.capacityBytes - (1 << 20) && info.committedBytes == 8 << 20)
            let replica = try again.replica(uuid: r)
            #expect(replica.shared && replica.allowedHosts == ["nqn.2014-08.org.nvmexpress:uuid:h1"] && replica.allocatedBytes == 1 << 20)
            #expect(again.reservationState(uuid: r) == [9, 8, 7])
            #expect(again.properties(uuid: r) == Array("labels".utf8))
            let reopened = try again.device(uuid: r)
            #expect(try await reopened.readBytes(at: 300, blocks: 4) == Pattern.blocks(tag: 1, lba: 300, count: 4, size: 4096))
            #expect(try await reopened.readBytesViaCallback(at: 299, blocks: 1) == [UInt8](repeating: 0, count: 4096))
            try await again.destroy(force: true)
            #expect(!FileManager.default.fileExists(atPath: path), "the pool created the file, so destroy unlinks it")
        }
    }

    @Test("destroy refuses while replicas exist, wipes both labels, keeps a file the pool did not create")
    func destroy() async throws {
        try await TemporaryDirectory.with { dir in
            let path = dir.file("disk.img")
            #expect(FileManager.default.createFile(atPath: path, contents: nil))
            let handle = try #require(FileHandle(forWritingAtPath: path))
            try handle.truncate(atOffset: 64 << 20)
            try handle.close()
            let pool = try await Pool.create(path: path, options: PoolCreateOptions(name: "keep"), ioThreads: 1)
            let r = UUID()
            _ = try await pool.createReplica(uuid: r, name: "r", sizeBytes: 1 << 20, thin: true)
            await expectPoolError(.failedPrecondition("pool 'keep' holds 1 replica(s): destroy them first, or force")) { () async throws(PoolError) in
                try await pool.destroy(force: false)
            }
            try await pool.destroyReplica(uuid: r)
            try await pool.destroy(force: false)
            #expect(FileManager.default.fileExists(atPath: path))
            await expectPoolError(PoolError.failedPrecondition, containing: ["holds no pool label", path]) { () async throws(PoolError) in
                try await Pool.import(path: path, ioThreads: 1)
            }
            // The wiped disk can take a new pool.
            let fresh = try await Pool.create(path: path, options: PoolCreateOptions(name: "fresh"), ioThreads: 1)
            #expect(fresh.info.replicaCount == 0)
            await fresh.export()
        }
    }

    @Test("create refuses an existing pool unless told to overwrite; bad options are invalid arguments")
    func createValidation() async throws {
        try await TemporaryDirectory.with { dir in
            let path = dir.file("pool.img")
            let first = try await Pool.create(path: path, options: PoolCreateOptions(name: "one", createFileSize: 64 << 20), ioThreads: 1)
            let firstUUID = first.info.uuid
            await first.export()
            await expectPoolError(PoolError.failedPrecondition, containing: ["already holds pool 'one'", "\(firstUUID)"]) { () async throws(PoolError) in
                try await Pool.create(path: path, options: PoolCreateOptions(name: "two"), ioThreads: 1)
            }
            let second = try await Pool.create(path: path, options: PoolCreateOptions(name: "two", overwriteExistingPool: true), ioThreads: 1)
            #expect(second.info.name == "two")
            await second.export()

            await expectPoolError(PoolError.notFound, containing: [dir.file("missing.img"), "createFileSize"]) { () async throws(PoolError) in
                try await Pool.create(path: dir.file("missing.img"), options: PoolCreateOptions(name: "x"), ioThreads: 1)
            }
            await expectPoolError(PoolError.notFound, containing: [dir.file("missing.img")]) { () async throws(PoolError) in
                try await Pool.import(path: dir.file("missing.img"), ioThreads: 1)
            }
            await expectPoolError(PoolError.invalidArgument, containing: ["extent size 12345"]) { () async throws(PoolError) in
                try await Pool.create(path: dir.file("a.img"), options: PoolCreateOptions(name: "x", extentSize: 12345, createFileSize: 64 << 20))
            }
            await expectPoolError(PoolError.invalidArgument, containing: ["extent size 32768"]) { () async throws(PoolError) in
                try await Pool.create(path: dir.file("a.img"), options: PoolCreateOptions(name: "x", extentSize: 32 << 10, createFileSize: 64 << 20))
            }
            await expectPoolError(PoolError.invalidArgument, containing: ["block size 1024"]) { () async throws(PoolError) in
                try await Pool.create(path: dir.file("a.img"), options: PoolCreateOptions(name: "x", blockSize: 1024, createFileSize: 64 << 20))
            }
            await expectPoolError(PoolError.invalidArgument, containing: ["pool name ''"]) { () async throws(PoolError) in
                try await Pool.create(path: dir.file("a.img"), options: PoolCreateOptions(name: "", createFileSize: 64 << 20))
            }
            await expectPoolError(PoolError.invalidArgument, containing: ["too small"]) { () async throws(PoolError) in
                try await Pool.create(path: dir.file("small.img"), options: PoolCreateOptions(name: "x", createFileSize: 4 << 20))
            }
            #expect(!FileManager.default.fileExists(atPath: dir.file("small.img")), "a failed create removes the file it created")
            #expect(!FileManager.default.fileExists(atPath: dir.file("a.img")))
        }
    }

    @Test("a pool whose superblocks are both corrupt is refused with the reason; one torn copy is survived")
    func corruptLabels() async throws {
        try await TemporaryDirectory.with { dir in
            let path = dir.file("pool.img")
            let pool = try await Pool.create(path: path, options: PoolCreateOptions(name: "lbl", createFileSize: 64 << 20), ioThreads: 1)
            _ = try await pool.createReplica(uuid: UUID(), name: "r", sizeBytes: 1 << 20, thin: false)
            await pool.export()
            let handle = try #require(FileHandle(forUpdatingAtPath: path))
            // Import writes its checkpoint's superblock to slot 0 (create left slot 1 current).
            let imported = try await Pool.import(path: path, ioThreads: 1)
            #expect(imported.info.replicaCount == 1)
            await imported.export()
            // Tear that newer copy: the older one, its checkpoint and its journal still hold the replica.
            try handle.seek(toOffset: 0 + 40)
            handle.write(Data([0xFF, 0xFF]))
            try handle.synchronize()
            let survivor = try await Pool.import(path: path, ioThreads: 1)
            #expect(survivor.info.replicaCount == 1 && survivor.info.state == .online)
            await survivor.export()
            for slot: UInt64 in [0, 4096] {
                try handle.seek(toOffset: slot + 40)
                handle.write(Data([0xFF, 0xFF]))
            }
            try handle.close()
            await expectPoolError(PoolError.failedPrecondition, containing: ["both superblock copies are invalid", "CRC mismatch"]) { () async throws(PoolError) in
                try await Pool.import(path: path, ioThreads: 1)
            }
        }
    }
}
