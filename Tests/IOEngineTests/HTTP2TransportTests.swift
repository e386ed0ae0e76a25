import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2Posix
import IOEngine
import IOEngineAPI
import Testing

/// The services over a real HTTP/2 server (what `halyard io-engine` binds), on 127.0.0.1 port 0.
@Suite("io-engine over HTTP/2")
struct HTTP2TransportTests {
    @Test("CreatePool and ListPools over .http2NIOPosix on 127.0.0.1:0")
    func createAndList() async throws {
        try await EngineFixture.withTemporaryDirectory { dir in
            let engine = IOEngine(configuration: EngineFixture.configuration(stateDirectory: dir), logger: EngineFixture.logger)
            try await engine.start()
            do {
                try await withGRPCServer(
                    transport: .http2NIOPosix(address: .ipv4(host: "127.0.0.1", port: 0), transportSecurity: .plaintext),
                    services: engine.services
                ) { server in
                    let address = try #require(try await server.listeningAddress?.ipv4)
                    #expect(address.port > 0)
                    try await withGRPCClient(
                        transport: try .http2NIOPosix(target: .ipv4(host: "127.0.0.1", port: address.port), transportSecurity: .plaintext)
                    ) { client in
                        let pools = Halyard_Ioengine_V1_PoolService.Client(wrapping: client)
                        var request = Halyard_Ioengine_V1_CreatePoolRequest()
                        request.name = "h2"
                        request.disk = "\(dir)/h2.img"
                        request.sizeBytes = 64 << 20
                        let pool = try await pools.createPool(request)
                        #expect(pool.name == "h2" && pool.state == .online && pool.capacityBytes > 0)
                        let listed = try await pools.listPools(Halyard_Ioengine_V1_ListPoolsRequest())
                        #expect(listed.pools == [pool])
                        var missing = Halyard_Ioengine_V1_GetPoolRequest()
                        missing.name = "absent"
                        let error = await EngineFixture.rpcError { _ = try await pools.getPool(missing) }
                        #expect(error?.code == .notFound && error?.message.contains("absent") == true, "status and message cross the wire")
                    }
                }
            } catch {
                await engine.stop()
                throw error
            }
            await engine.stop()
        }
    }
}
