import Foundation
import GRPCCore
import IOEngine
import IOEngineAPI
import StoragePool
import Testing

/// Every status the API promises, each with a message naming the object and the value at
/// fault, and bad input refused before anything changes.
@Suite("io-engine API errors")
struct APIErrorTests {
    static func expectStatus(_ code: RPCError.Code, mentioning words: [String], _ comment: Comment? = nil,
                             sourceLocation: SourceLocation = #_sourceLocation, _ body: () async throws -> Void) async {
        let error = await EngineFixture.rpcError(body)
        #expect(error?.code == code, "expected \(code), got \(String(describing: error))", sourceLocation: sourceLocation)
        for word in words {
            #expect(error?.message.lowercased().contains(word.lowercased()) == true, "message \"\(error?.message ?? "")\" should mention \(word)",
                    sourceLocation: sourceLocation)
        }
    }

    @Test("NOT_FOUND, ALREADY_EXISTS, RESOURCE_EXHAUSTED, INVALID_ARGUMENT, FAILED_PRECONDITION with messages naming object and value")
    func statuses() async throws {
        try await EngineFixture.withTemporaryDirectory { dir in
            try await EngineFixture.withEngine(stateDirectory: dir) { h in
                let pool = try await h.createPool("pool", in: dir, size: 64 << 20)
                let replicaUUID = UUID().uuidString.lowercased()
                try await h.createReplica(replicaUUID, pool: "pool", size: 4 << 20, thin: false)
                let unknown = UUID().uuidString.lowercased()

                // NOT_FOUND
                await Self.expectStatus(.notFound, mentioning: ["nope", "pool"]) { _ = try await h.getPool("nope") }
                await Self.expectStatus(.notFound, mentioning: [unknown]) { _ = try await h.getReplica(unknown) }
                await Self.expectStatus(.notFound, mentioning: ["nope"]) {
                    _ = try await h.createReplica(unknown, pool: "nope", size: 4096)
                }
                await Self.expectStatus(.notFound, mentioning: [unknown]) {
                    var r = Halyard_Ioengine_V1_DestroyReplicaRequest()
                    r.uuid = unknown
                    _ = try await h.replicas.destroyReplica(r)
                }
                await Self.expectStatus(.notFound, mentioning: ["\(dir)/absent.img"]) {
                    var r = Halyard_Ioengine_V1_ImportPoolRequest()
                    r.disk = "\(dir)/absent.img"
                    _ = try await h.pools.importPool(r)
                }

                // ALREADY_EXISTS
                await Self.expectStatus(.alreadyExists, mentioning: ["pool", "extent size"]) {
                    _ = try await h.createPool("pool", in: dir, size: 64 << 20, extentSize: 65536)
                }
                await Self.expectStatus(.alreadyExists, mentioning: ["\(dir)/pool.img", "'pool'"]) {
                    var r = Halyard_Ioengine_V1_CreatePoolRequest()
                    r.name = "other"
                    r.disk = "\(dir)/pool.img"
                    _ = try await h.pools.createPool(r)
                }
                await Self.expectStatus(.alreadyExists, mentioning: [replicaUUID, "4194304", "8388608"]) {
                    _ = try await h.createReplica(replicaUUID, pool: "pool", size: 8 << 20, thin: false)
                }

                // RESOURCE_EXHAUSTED
                await Self.expectStatus(.resourceExhausted, mentioning: [unknown, "\(pool.capacityBytes)"]) {
                    _ = try await h.createReplica(unknown, pool: "pool", size: pool.capacityBytes + (1 << 20), thin: true)
                }
                await Self.expectStatus(.resourceExhausted, mentioning: [unknown, "thick"]) {
                    _ = try await h.createReplica(unknown, pool: "pool", size: pool.capacityBytes, thin: false)
                }

                // INVALID_ARGUMENT
                await Self.expectStatus(.invalidArgument, mentioning: ["not-a-uuid"]) {
                    _ = try await h.createReplica("not-a-uuid", pool: "pool", size: 4096)
                }
                await Self.expectStatus(.invalidArgument, mentioning: ["size 0"]) {
                    _ = try await h.createReplica(unknown, pool: "pool", size: 0)
                }
                await Self.expectStatus(.invalidArgument, mentioning: ["4097", "4096"]) {
                    _ = try await h.createReplica(unknown, pool: "pool", size: 4097)
                }
                await Self.expectStatus(.invalidArgument, mentioning: ["bad host"]) {
                    _ = try await h.createReplica(unknown, pool: "pool", size: 4096, share: true, allowedHosts: ["bad host"])
                }
                await Self.expectStatus(.invalidArgument, mentioning: ["extent size 3000"]) {
                    _ = try await h.createPool("p2", in: dir, size: 64 << 20, extentSize: 3000)
                }
                await Self.expectStatus(.invalidArgument, mentioning: ["block size 1000"]) {
                    var r = Halyard_Ioengine_V1_CreatePoolRequest()
                    r.name = "p2"
                    r.disk = "\(dir)/p2.img"
                    r.sizeBytes = 64 << 20
                    r.blockSize = 1000
                    _ = try await h.pools.createPool(r)
                }
                await Self.expectStatus(.invalidArgument, mentioning: ["pool name is empty"]) {
                    var r = Halyard_Ioengine_V1_CreatePoolRequest()
                    r.disk = "\(dir)/p3.img"
                    r.sizeBytes = 64 << 20
                    _ = try await h.pools.createPool(r)
                }
                await Self.expectStatus(.invalidArgument, mentioning: ["xyz"]) {
                    var r = Halyard_Ioengine_V1_CreatePoolRequest()
                    r.name = "p4"
                    r.disk = "\(dir)/p4.img"
                    r.uuid = "xyz"
                    _ = try await h.pools.createPool(r)
                }
                await Self.expectStatus(.invalidArgument, mentioning: [replicaUUID, "shrink"]) {
                    var r = Halyard_Ioengine_V1_ResizeReplicaRequest()
                    r.uuid = replicaUUID
                    r.sizeBytes = 1 << 20
                    _ = try await h.replicas.resizeReplica(r)
                }
                await Self.expectStatus(.invalidArgument, mentioning: [replicaUUID, "bad\thost"]) {
                    _ = try await h.setAllowedHosts(replicaUUID, ["bad\thost"])
                }
                // Nothing of the refused requests was made.
                #expect(!FileManager.default.fileExists(atPath: "\(dir)/p2.img") && !FileManager.default.fileExists(atPath: "\(dir)/p4.img"))
                #expect(try await h.listPools().map(\.name) == ["pool"])
                #expect(try await h.getPool("pool").replicaCount == 1)
                #expect(try await h.getReplica(replicaUUID).sizeBytes == 4 << 20)

                // FAILED_PRECONDITION
                await Self.expectStatus(.failedPrecondition, mentioning: ["'pool'", "1 replica"]) {
                    var r = Halyard_Ioengine_V1_DestroyPoolRequest()
                    r.name = "pool"
                    _ = try await h.pools.destroyPool(r)
                }
                let blank = "\(dir)/blank.img"
                #expect(FileManager.default.createFile(atPath: blank, contents: Data(count: 16 << 20)))
                await Self.expectStatus(.failedPrecondition, mentioning: [blank, "no pool label"]) {
                    var r = Halyard_Ioengine_V1_ImportPoolRequest()
                    r.disk = blank
                    _ = try await h.pools.importPool(r)
                }
                #expect(try await h.listPools().map(\.name) == ["pool"])
            }
        }
    }

    @Test("ALREADY_EXISTS for a disk holding an exported pool (named); ImportPool of a name in use is refused and leaves the pool")
    func existingLabels() async throws {
        try await EngineFixture.withTemporaryDirectory { dir in
            // A pool made outside the engine (as `halyard pool create` on another node would).
            let outside = try await Pool.create(path: "\(dir)/outside.img",
                                                options: PoolCreateOptions(name: "pool", createFileSize: 64 << 20), ioThreads: 1)
            await outside.export()
            try await EngineFixture.withEngine(stateDirectory: dir) { h in
                await Self.expectStatus(.alreadyExists, mentioning: ["\(dir)/outside.img", "'pool'"]) {
                    var r = Halyard_Ioengine_V1_CreatePoolRequest()
                    r.name = "fresh"
                    r.disk = "\(dir)/outside.img"
                    _ = try await h.pools.createPool(r)
                }
                try await h.createPool("pool", in: dir, size: 64 << 20)
                await Self.expectStatus(.alreadyExists, mentioning: ["'pool'", "\(dir)/outside.img"]) {
                    var r = Halyard_Ioengine_V1_ImportPoolRequest()
                    r.disk = "\(dir)/outside.img"
                    _ = try await h.pools.importPool(r)
                }
                #expect(try await h.listPools().map(\.disk) == ["\(dir)/pool.img"])
            }
        }
    }
}
