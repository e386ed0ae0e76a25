import Foundation
import GRPCCore
import GRPCInProcessTransport
import IOEngine
import IOEngineAPI
import Logging
import NIOCore
import NIOPosix
import NVMe
import NVMeHost
import Testing

typealias InProcessClient = GRPCClient<InProcessTransport.Client>

/// An io-engine started on a state directory, with gRPC clients over an in-process transport.
struct EngineHarness: Sendable {
    let engine: IOEngine
    let pools: Halyard_Ioengine_V1_PoolService.Client<InProcessTransport.Client>
    let replicas: Halyard_Ioengine_V1_ReplicaService.Client<InProcessTransport.Client>
    let node: Halyard_Ioengine_V1_NodeService.Client<InProcessTransport.Client>
    let nexuses: Halyard_Ioengine_V1_NexusService.Client<InProcessTransport.Client>

    var address: TransportAddress { TransportAddress(host: "127.0.0.1", port: engine.nvmfPort) }

    /// Creates a pool on a new sparse file `<dir>/<name>.img` of `size` bytes.
    @discardableResult
    func createPool(_ name: String, in dir: String, size: UInt64 = 256 << 20, extentSize: UInt32 = 0) async throws -> Halyard_Ioengine_V1_Pool {
        var request = Halyard_Ioengine_V1_CreatePoolRequest()
        request.name = name
        request.disk = "\(dir)/\(name).img"
        request.sizeBytes = size
        request.extentSize = extentSize
        return try await pools.createPool(request)
    }

    @discardableResult
    func createReplica(_ uuid: String, pool: String, size: UInt64, thin: Bool = true, share: Bool = false,
                       allowedHosts: [String] = []) async throws -> Halyard_Ioengine_V1_Replica {
        var request = Halyard_Ioengine_V1_CreateReplicaRequest()
        request.uuid = uuid
        request.pool = pool
        request.sizeBytes = size
        request.thin = thin
        request.share = share
        request.allowedHosts = allowedHosts
        return try await replicas.createReplica(request)
    }

    func getReplica(_ uuid: String) async throws -> Halyard_Ioengine_V1_Replica {
        var request = Halyard_Ioengine_V1_GetReplicaRequest()
        request.uuid = uuid
        return try await replicas.getReplica(request)
    }

    func getPool(_ name: String) async throws -> Halyard_Ioengine_V1_Pool {
        var request = Halyard_Ioengine_V1_GetPoolRequest()
        request.name = name
        return try await pools.getPool(request)
    }

    func listPools() async throws -> [Halyard_Ioengine_V1_Pool] {
        try await pools.listPools(Halyard_Ioengine_V1_ListPoolsRequest()).pools
    }

    func setAllowedHosts(_ uuid: String, _ hosts: [String]) async throws -> Halyard_Ioengine_V1_Replica {
        var request = Halyard_Ioengine_V1_SetReplicaAllowedHostsRequest()
        request.uuid = uuid
        request.allowedHosts = hosts
        return try await replicas.setReplicaAllowedHosts(request)
    }

    /// Connects `host` to the replica's share (one I/O queue, no keep-alive).
    func connect(_ nqn: String, as host: HostIdentity) async throws -> NVMeController {
        var options = ControllerOptions()
        options.ioQueueCount = 1
        options.keepAliveTimeout = .zero
        options.connectTimeout = .seconds(5)
        return try await NVMeController.connect(to: address, subsystemNQN: nqn, identity: host, options: options,
                                                group: MultiThreadedEventLoopGroup.singleton)
    }
}

enum EngineFixture {
    static let logger: Logger = {
        var logger = Logger(label: "halyard.io-engine.test")
        logger.logLevel = .warning
        return logger
    }()

    static let hostA = HostIdentity(hostNQN: "nqn.2014-08.org.nvmexpress:uuid:aaaaaaaa-0000-4000-8000-00000000000a",
                                    hostID: [0xaa, 0xaa, 0xaa, 0xaa, 0, 0, 0x40, 0, 0x80, 0, 0, 0, 0, 0, 0, 0x0a])
    static let hostB = HostIdentity(hostNQN: "nqn.2014-08.org.nvmexpress:uuid:bbbbbbbb-0000-4000-8000-00000000000b",
                                    hostID: [0xbb, 0xbb, 0xbb, 0xbb, 0, 0, 0x40, 0, 0x80, 0, 0, 0, 0, 0, 0, 0x0b])

    static func nqn(_ uuid: String) -> String { "nqn.2026-11.io.halyard:replica:\(uuid.lowercased())" }

    /// A fresh temporary directory, removed when `body` ends.
    static func withTemporaryDirectory<T>(_ body: (String) async throws -> T) async throws -> T {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ioengine-test-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        return try await body(dir)
    }

    static func configuration(stateDirectory: String, importDisks: [String] = []) -> IOEngineConfiguration {
        IOEngineConfiguration(nodeName: "test-node", nvmfHost: "127.0.0.1", nvmfPort: 0, stateDirectory: stateDirectory,
                              importDisks: importDisks, version: "test", grpcEndpoint: "in-process", storeDescription: "embedded",
                              poolIOThreads: 1)
    }

    /// Starts an engine on `stateDirectory`, runs `body` with in-process clients, then stops
    /// the server and the engine (also when `body` throws).
    static func withEngine<T: Sendable>(stateDirectory: String, importDisks: [String] = [],
                                        _ body: (EngineHarness) async throws -> T) async throws -> T {
        let engine = IOEngine(configuration: configuration(stateDirectory: stateDirectory, importDisks: importDisks), logger: logger)
        try await engine.start()
        do {
            let transport = InProcessTransport()
            let result = try await withGRPCServer(transport: transport.server, services: engine.services) { _ in
                try await withGRPCClient(transport: transport.client) { client in
                    try await body(EngineHarness(engine: engine, pools: .init(wrapping: client), replicas: .init(wrapping: client),
                                                 node: .init(wrapping: client), nexuses: .init(wrapping: client)))
                }
            }
            await engine.stop()
            return result
        } catch {
            await engine.stop()
            throw error
        }
    }

    /// The RPC status `body` fails with (nil if it succeeds or fails otherwise).
    static func rpcError(_ body: () async throws -> Void) async -> RPCError? {
        do {
            try await body()
            return nil
        } catch let error as RPCError {
            return error
        } catch {
            Issue.record("expected an RPCError, got \(error)")
            return nil
        }
    }

    /// Whether the controller's admin queue closes within `timeout`.
    static func isDisconnected(_ controller: NVMeController, within timeout: Duration = .seconds(3)) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if !controller.admin.isActive { return true }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return !controller.admin.isActive
    }

    /// A deterministic pattern of `count` bytes (a multiple of 4096): every 4 KiB block is a
    /// seeded pattern stamped with the seed and its block index, so misplaced blocks show.
    static func pattern(_ count: Int, seed: UInt8) -> ByteBuffer {
        precondition(count % 4096 == 0)
        var block = [UInt8](repeating: 0, count: 4096)
        for i in 0..<4096 { block[i] = UInt8(truncatingIfNeeded: i &* 31 &+ Int(seed) &* 7) }
        var buffer = ByteBuffer()
        buffer.reserveCapacity(count)
        for index in 0..<(count / 4096) {
            buffer.writeInteger(seed)
            buffer.writeInteger(UInt32(index))
            buffer.writeBytes(block[5...])
        }
        return buffer
    }
}
