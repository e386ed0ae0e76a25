import ArgumentParser
import Foundation
import Histogram
import Store
import StoreEtcd

/// `halyard store …`: tools for the cluster store.
struct StoreCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "store",
        abstract: "Tools for the cluster store (etcd or embedded).",
        subcommands: [StoreBenchCommand.self]
    )
}

/// `halyard store bench`: the same operations against etcd through its gRPC API, etcd through
/// its HTTP/JSON gateway and the embedded store, in one run (Benchmarks/store.sh,
/// Benchmarks/README "Store"). It chose the etcd client: the faster one is what StoreEtcd uses.
struct StoreBenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure store operations: etcd gRPC vs etcd JSON gateway vs embedded."
    )

    @Option(help: "etcd client endpoint HOST:PORT (the benchmark writes under /halyard-bench/).")
    var etcd: String = "127.0.0.1:2379"

    @Option(help: "Operations per workload and concurrency.")
    var operations: Int = 2000

    @Option(help: "Concurrent clients (comma-separated).")
    var concurrency: String = "1,16"

    @Option(help: "Backends (comma-separated): etcd-grpc, etcd-json, embedded.")
    var backends: String = "etcd-grpc,etcd-json,embedded"

    @Option(help: "Directory for the embedded store (default: a temporary directory, removed after).")
    var directory: String?

    @Flag(help: "Print JSON lines instead of a table.")
    var json = false

    struct Row: Encodable {
        var backend: String
        var workload: String
        var concurrency: Int
        var operations: Int
        var opsPerSecond: Double
        var p50Us: Double
        var p99Us: Double
    }

    /// One backend's operations, per client.
    struct Client: Sendable {
        var range: @Sendable (KeyRange) async throws -> RangeResult
        var transaction: @Sendable (Transaction) async throws -> TransactionResult
    }

    /// Runs `body` with a client of its own (a connection of its own, for the JSON gateway).
    typealias WithClient = @Sendable (_ body: @Sendable (Client) async throws -> Histogram<UInt64>) async throws -> Histogram<UInt64>

    static func emptyHistogram() -> Histogram<UInt64> {
        Histogram<UInt64>(lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: .three)
    }

    func run() async throws {
        let levels = concurrency.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        let runID = UUID().uuidString.prefix(8)
        var rows: [Row] = []
        if !json { print(String(format: "%-10@ %-12@ %4@ %10@ %10@ %10@", "backend" as NSString, "workload" as NSString, "conc" as NSString, "ops/s" as NSString, "p50 µs" as NSString, "p99 µs" as NSString)) }
        for backend in backends.split(separator: ",").map(String.init) {
            let maxClients = levels.max() ?? 1
            var closers: [@Sendable () async -> Void] = []
            var store: (any Store)?
            var embeddedDirectory: String?
            let withClient: WithClient
            switch backend {
            case "etcd-grpc":
                // One HTTP/2 connection per client, like the gateway's one HTTP/1.1 connection per client.
                let s = try EtcdStore(endpoint: etcd)
                store = s
                closers.append { await s.close() }
                let endpoint = etcd
                withClient = { body in
                    let own = try EtcdStore(endpoint: endpoint)
                    do {
                        let result = try await body(Client(range: { try await own.range($0, revision: nil, limit: 0) },
                                                           transaction: { try await own.transaction($0) }))
                        await own.close()
                        return result
                    } catch {
                        await own.close()
                        throw error
                    }
                }
            case "etcd-json":
                let endpoint = etcd
                withClient = { body in
                    try await EtcdJSONGateway.withConnection(endpoint: endpoint) { gateway in
                        try await body(Client(range: { try await gateway.range($0, revision: nil, limit: 0) },
                                              transaction: { try await gateway.transaction($0) }))
                    }
                }
            case "embedded":
                let dir = directory ?? FileManager.default.temporaryDirectory.appendingPathComponent("halyard-store-bench-\(runID)").path
                if directory == nil { embeddedDirectory = dir }
                let s = try await EmbeddedStore.open(directory: dir)
                store = s
                closers.append { await s.close() }
                let client = Client(range: { try await s.range($0, revision: nil, limit: 0) }, transaction: { try await s.transaction($0) })
                withClient = { body in try await body(client) }
            default:
                throw ValidationError("unknown backend '\(backend)' (etcd-grpc, etcd-json, embedded)")
            }
            let prefix = "/halyard-bench/\(runID)/\(backend)/"
            // Seed: 100 keys for the range workload, one key per client for get and CAS.
            let value = [UInt8](repeating: 0x61, count: 256)
            _ = try await withClient { client in
                for i in 0..<100 { _ = try await client.transaction(Transaction(success: [.put(prefix + "range/\(String(format: "%03d", i))", value)])) }
                for c in 0..<maxClients { _ = try await client.transaction(Transaction(success: [.put(prefix + "key/\(c)", value)])) }
                return Self.emptyHistogram()
            }

            for level in levels {
                for workload in ["put", "get", "cas", "range100"] {
                    let row = try await measure(backend: backend, workload: workload, clients: level, withClient: withClient,
                                                prefix: prefix, value: value)
                    rows.append(row)
                    emit(row)
                }
            }
            if let store {
                let row = try await measureWatch(backend: backend, store: store, prefix: prefix, value: value)
                rows.append(row)
                emit(row)
            }
            _ = try? await withClient { client in
                _ = try await client.transaction(Transaction(success: [.delete(.prefix(prefix))]))
                return Self.emptyHistogram()
            }
            for close in closers { await close() }
            if let embeddedDirectory { try? FileManager.default.removeItem(atPath: embeddedDirectory) }
        }
    }

    private func emit(_ row: Row) {
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = .sortedKeys
            print(String(decoding: (try? encoder.encode(row)) ?? Data(), as: UTF8.self))
        } else {
            print(String(format: "%-10@ %-12@ %4d %10.0f %10.1f %10.1f", row.backend as NSString, row.workload as NSString,
                         row.concurrency, row.opsPerSecond, row.p50Us, row.p99Us))
        }
    }

    private func measure(backend: String, workload: String, clients: Int, withClient: @escaping WithClient,
                         prefix: String, value: [UInt8]) async throws -> Row {
        let perClient = max(1, operations / clients)
        let clock = ContinuousClock()
        let start = clock.now
        let histograms = try await withThrowingTaskGroup(of: Histogram<UInt64>.self) { group in
            for index in 0..<clients {
                group.addTask { try await withClient { client in
                    var histogram = Self.emptyHistogram()
                    let key = prefix + "key/\(index)"
                    var modRevision = try await client.range(.key(key)).kvs.first?.modRevision ?? 0
                    for i in 0..<perClient {
                        let t0 = clock.now
                        switch workload {
                        case "put":
                            _ = try await client.transaction(Transaction(success: [.put(prefix + "put/\(index)/\(i % 100)", value)]))
                        case "get":
                            _ = try await client.range(.key(key))
                        case "cas":
                            let result = try await client.transaction(Transaction(
                                compares: [.modRevision(key, is: modRevision)], success: [.put(key, value)]))
                            guard result.succeeded else { throw ValidationError("CAS on \(key) failed: another writer?") }
                            modRevision = result.revision
                        default:
                            let r = try await client.range(.prefix(prefix + "range/"))
                            guard r.kvs.count == 100 else { throw ValidationError("range read \(r.kvs.count) keys, not 100") }
                        }
                        let elapsed = clock.now - t0
                        _ = histogram.record(UInt64(elapsed.components.seconds) * 1_000_000_000 + UInt64(elapsed.components.attoseconds / 1_000_000_000))
                    }
                    return histogram
                } }
            }
            var merged = Histogram<UInt64>(lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: .three)
            for try await h in group { merged.add(h) }
            return merged
        }
        let seconds = Double((clock.now - start).components.attoseconds) / 1e18 + Double((clock.now - start).components.seconds)
        let total = perClient * clients
        return Row(backend: backend, workload: workload, concurrency: clients, operations: total,
                   opsPerSecond: Double(total) / seconds,
                   p50Us: Double(histograms.valueAtPercentile(50)) / 1000, p99Us: Double(histograms.valueAtPercentile(99)) / 1000)
    }

    /// Put → event latency of one watcher, puts one at a time.
    private func measureWatch(backend: String, store: any Store, prefix: String, value: [UInt8]) async throws -> Row {
        let count = min(operations, 500)
        let start = try await store.range(.key(prefix), revision: nil, limit: 0).revision
        let stream = store.watch(.prefix(prefix + "watch/"), fromRevision: start + 1)
        var iterator = stream.makeAsyncIterator()
        let clock = ContinuousClock()
        var histogram = Histogram<UInt64>(lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: .three)
        let began = clock.now
        for i in 0..<count {
            let t0 = clock.now
            try await store.put(prefix + "watch/\(i % 10)", value)
            var seen = 0
            while seen == 0 {
                guard let batch = try await iterator.next() else { throw ValidationError("watch ended") }
                seen += batch.count
            }
            let elapsed = clock.now - t0
            _ = histogram.record(UInt64(elapsed.components.seconds) * 1_000_000_000 + UInt64(elapsed.components.attoseconds / 1_000_000_000))
        }
        let seconds = Double((clock.now - began).components.attoseconds) / 1e18 + Double((clock.now - began).components.seconds)
        return Row(backend: backend, workload: "put→watch", concurrency: 1, operations: count, opsPerSecond: Double(count) / seconds,
                   p50Us: Double(histogram.valueAtPercentile(50)) / 1000, p99Us: Double(histogram.valueAtPercentile(99)) / 1000)
    }
}
