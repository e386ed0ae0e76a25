#if canImport(StoreEtcd)
import Foundation
import Store
@testable import StoreEtcd
import Testing

/// What is particular to the etcd backend: endpoints, an unreachable server, and sustained
/// request rates over one connection (etcd's grpc-go server sends a PING per call; see
/// EtcdPingResponder).
@Suite("etcd backend", .timeLimit(.minutes(2)))
struct EtcdStoreTests {
    @Test("endpoints: host:port, http:// and etcd:// forms; malformed ones are invalid arguments")
    func endpoints() throws {
        #expect(try EtcdStore.parse(endpoint: "127.0.0.1:2379") == ("127.0.0.1", 2379))
        #expect(try EtcdStore.parse(endpoint: "http://etcd.local:23790/") == ("etcd.local", 23790))
        #expect(try EtcdStore.parse(endpoint: "etcd://10.0.0.1:1") == ("10.0.0.1", 1))
        for bad in ["", "127.0.0.1", "127.0.0.1:0", "127.0.0.1:70000", ":2379", "host:port"] {
            #expect(throws: StoreError.self, "\(bad)") { _ = try EtcdStore.parse(endpoint: bad) }
        }
    }

    @Test("an unreachable etcd fails calls with 'unavailable' within the call timeout")
    func unreachable() async throws {
        let port = try EtcdServer.freePort()  // nothing listens there
        let store = try EtcdStore(.init(endpoint: "127.0.0.1:\(port)", callTimeout: .seconds(1)))
        let start = ContinuousClock.now
        await #expect {
            _ = try await store.get("/x")
        } throws: { error in
            guard case StoreError.unavailable = error else { return false }
            return true
        }
        #expect(ContinuousClock.now - start < .seconds(5))
        await store.close()
        await #expect(throws: StoreError.closed) { _ = try await store.get("/x") }
    }

    @Test("1000 calls in a burst on one connection (well over the 200 control frames per 30 s an HTTP/2 client tolerates)")
    func sustainedRate() async throws {
        guard let server = await EtcdFixture.shared() else { EtcdFixture.unavailable(); return }
        let store = try EtcdStore(StoreUnderTest.etcdConfiguration(server.endpoint))
        let prefix = "/etcd-backend/\(UUID().uuidString.prefix(8))/"
        for i in 0..<500 {
            try await store.put(prefix + "k\(i % 10)", Array("value \(i)".utf8))
            #expect(try await store.get(prefix + "k\(i % 10)")?.string == "value \(i)")
        }
        #expect(try await store.delete(.prefix(prefix)) == 10)
        await store.close()
    }
}
#endif
