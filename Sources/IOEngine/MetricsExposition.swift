import Foundation
import GRPCCore
import Nexus
import Prometheus
import StoragePool

/// The io-engine's Prometheus exposition (text format 0.0.4), rendered when `/metrics` is
/// scraped: per replica I/O counters and latency histograms (from ``ReplicaIOStats``), replica
/// size and allocation, pool capacity/usage, per nexus state, child states, rebuild progress,
/// finished rebuilds and host I/O counters, gRPC requests by method and code, build info, and
/// the process's CPU time and resident memory (from /proc/self).
public final class IOEngineMetrics: Sendable {
    /// Collectors owned through swift-prometheus (gRPC request counters, info).
    public let registry = PrometheusCollectorRegistry()
    public let nodeName: String

    public init(nodeName: String, version: String) {
        self.nodeName = nodeName
        registry.makeGauge(name: "halyard_io_engine_info", labels: [("node", nodeName), ("version", version)],
                           help: "The io-engine's node name and version (always 1).").set(to: 1.0)
    }

    /// Counts one gRPC request (the interceptor calls it).
    func countRequest(method: String, code: String) {
        registry.makeCounter(name: "halyard_grpc_requests_total", labels: [("method", method), ("code", code)],
                             help: "gRPC requests answered, by method and status code.").increment()
    }

    /// The gRPC interceptor that feeds `halyard_grpc_requests_total`.
    public var interceptor: any ServerInterceptor { RequestCountingInterceptor(metrics: self) }

    /// The whole exposition for `engine`.
    public func render(engine: IOEngine) -> String {
        var out: [UInt8] = []
        registry.emit(into: &out)
        var text = String(decoding: out, as: UTF8.self)
        Self.renderPools(engine.poolInfos(), into: &text)
        Self.renderReplicas(engine.replicaSamples(), into: &text)
        Self.renderNexuses(engine.nexusSamples(), into: &text)
        Self.renderProcess(into: &text)
        return text
    }

    static func renderPools(_ pools: [PoolInfo], into text: inout String) {
        let gauges: [(String, String, (PoolInfo) -> Double)] = [
            ("halyard_pool_capacity_bytes", "Data capacity of the pool (extents × extent size).", { Double($0.capacityBytes) }),
            ("halyard_pool_used_bytes", "Allocated extents × extent size.", { Double($0.usedBytes) }),
            ("halyard_pool_committed_bytes", "Sum of the pool's replica sizes (thin replicas may over-commit).", { Double($0.committedBytes) }),
            ("halyard_pool_replicas", "Replicas in the pool.", { Double($0.replicaCount) }),
            ("halyard_pool_online", "1 when the pool is online, 0 when faulted.", { if case .online = $0.state { 1 } else { 0 } }),
            ("halyard_pool_journal_commits_total", "Metadata journal commits (each one write + fdatasync).", { Double($0.journalCommits) }),
        ]
        for (name, help, value) in gauges {
            text += "# HELP \(name) \(help)\n# TYPE \(name) \(name.hasSuffix("_total") ? "counter" : "gauge")\n"
            for pool in pools { text += "\(name){pool=\"\(escape(pool.name))\"} \(format(value(pool)))\n" }
        }
    }

    static func renderReplicas(_ replicas: [ReplicaSample], into text: inout String) {
        func labels(_ r: ReplicaSample) -> String { "pool=\"\(escape(r.poolName))\",replica=\"\(r.uuid.uuidString.lowercased())\"" }
        let simple: [(String, String, String, (ReplicaSample) -> Double)] = [
            ("halyard_replica_size_bytes", "gauge", "Replica size.", { Double($0.sizeBytes) }),
            ("halyard_replica_allocated_bytes", "gauge", "Bytes of the replica's allocated extents.", { Double($0.allocatedBytes) }),
            ("halyard_replica_shared", "gauge", "1 when served over NVMe/TCP.", { $0.shared ? 1 : 0 }),
            ("halyard_replica_read_ops_total", "counter", "Read commands completed.", { Double($0.stats.reads.snapshot.operations) }),
            ("halyard_replica_write_ops_total", "counter", "Write commands completed.", { Double($0.stats.writes.snapshot.operations) }),
            ("halyard_replica_read_errors_total", "counter", "Read commands that failed.", { Double($0.stats.reads.snapshot.errors) }),
            ("halyard_replica_write_errors_total", "counter", "Write commands that failed.", { Double($0.stats.writes.snapshot.errors) }),
            ("halyard_replica_read_bytes_total", "counter", "Bytes read.", { Double($0.stats.reads.snapshot.bytes) }),
            ("halyard_replica_written_bytes_total", "counter", "Bytes written.", { Double($0.stats.writes.snapshot.bytes) }),
        ]
        for (name, type, help, value) in simple {
            text += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
            for r in replicas { text += "\(name){\(labels(r))} \(format(value(r)))\n" }
        }
        for (name, pick) in [("halyard_replica_read_latency_seconds", \ReplicaIOStats.reads),
                             ("halyard_replica_write_latency_seconds", \ReplicaIOStats.writes)] {
            text += "# HELP \(name) Latency of the replica's commands at the storage layer.\n# TYPE \(name) histogram\n"
            for r in replicas {
                let s = r.stats[keyPath: pick].snapshot
                var cumulative: UInt64 = 0
                for (index, bound) in ReplicaIOStats.bucketBounds.enumerated() {
                    cumulative += s.bucketCounts[index]
                    text += "\(name)_bucket{\(labels(r)),le=\"\(format(bound))\"} \(cumulative)\n"
                }
                cumulative += s.bucketCounts.last ?? 0
                text += "\(name)_bucket{\(labels(r)),le=\"+Inf\"} \(cumulative)\n"
                text += "\(name)_sum{\(labels(r))} \(format(s.latencySumSeconds))\n"
                text += "\(name)_count{\(labels(r))} \(cumulative)\n"
            }
        }
    }

    static func renderNexuses(_ nexuses: [NexusSample], into text: inout String) {
        func labels(_ n: NexusSample) -> String { "nexus=\"\(n.uuid.uuidString.lowercased())\",volume=\"\(n.volumeUUID.uuidString.lowercased())\"" }
        func header(_ name: String, _ type: String, _ help: String) { text += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n" }

        header("halyard_nexus_state", "gauge", "1 for the nexus's current state (Online, Degraded, Faulted, ShuttingDown, Shutdown), 0 for the others.")
        for n in nexuses {
            for state in NexusState.allCases {
                text += "halyard_nexus_state{\(labels(n)),state=\"\(state.rawValue)\"} \(n.state == state ? 1 : 0)\n"
            }
        }
        header("halyard_nexus_published", "gauge", "1 when the nexus is published over NVMe/TCP.")
        for n in nexuses { text += "halyard_nexus_published{\(labels(n))} \(n.published ? 1 : 0)\n" }

        let childStates = ["Online", "Rebuilding", "Faulted", "Offline", "Closed"]
        header("halyard_nexus_child_state", "gauge", "1 for the child's current state (Online, Rebuilding, Faulted, Offline, Closed), 0 for the others.")
        for n in nexuses {
            for child in n.children {
                for state in childStates {
                    text += "halyard_nexus_child_state{\(labels(n)),child=\"\(child.uuid.uuidString.lowercased())\",state=\"\(state)\"} "
                        + "\(child.state.name == state ? 1 : 0)\n"
                }
            }
        }
        header("halyard_nexus_child_healthy", "gauge", "1 when the child is healthy in the nexus's health record.")
        for n in nexuses {
            for child in n.children {
                text += "halyard_nexus_child_healthy{\(labels(n)),child=\"\(child.uuid.uuidString.lowercased())\"} \(child.healthy ? 1 : 0)\n"
            }
        }

        let progress: [(String, String, (RebuildProgress) -> UInt64)] = [
            ("halyard_nexus_rebuild_bytes_copied", "Bytes a running rebuild has copied.", { $0.bytesCopied }),
            ("halyard_nexus_rebuild_segments_total", "Segments a running rebuild covers.", { $0.totalSegments }),
            ("halyard_nexus_rebuild_segments_copied", "Segments a running rebuild has copied.", { $0.segmentsCopied }),
            ("halyard_nexus_rebuild_segments_skipped", "Segments a running full rebuild skipped (unallocated on the source).", { $0.segmentsSkipped }),
        ]
        for (name, help, value) in progress {
            header(name, "gauge", help)
            for n in nexuses {
                for r in n.rebuilds {
                    let child = NexusIdentity.childUUID(uri: r.destination).uuidString.lowercased()
                    text += "\(name){\(labels(n)),child=\"\(child)\"} \(value(r))\n"
                }
            }
        }
        header("halyard_nexus_rebuilds_finished_total", "counter", "Rebuilds the nexus finished, by outcome (completed, failed, cancelled).")
        for n in nexuses {
            for (outcome, count) in n.finishedRebuilds.sorted(by: { $0.key < $1.key }) {
                text += "halyard_nexus_rebuilds_finished_total{\(labels(n)),outcome=\"\(outcome)\"} \(count)\n"
            }
        }

        let io: [(String, String, (NexusSample) -> UInt64)] = [
            ("halyard_nexus_read_ops_total", "Host read commands the nexus completed.", { $0.stats.reads.snapshot.operations }),
            ("halyard_nexus_write_ops_total", "Host write commands the nexus completed.", { $0.stats.writes.snapshot.operations }),
            ("halyard_nexus_read_bytes_total", "Bytes read by hosts through the nexus.", { $0.stats.reads.snapshot.bytes }),
            ("halyard_nexus_written_bytes_total", "Bytes written by hosts through the nexus.", { $0.stats.writes.snapshot.bytes }),
            ("halyard_nexus_read_errors_total", "Host reads that failed (held I/O included).", { $0.stats.reads.snapshot.errors }),
            ("halyard_nexus_write_errors_total", "Host writes that failed (held I/O included).", { $0.stats.writes.snapshot.errors }),
        ]
        for (name, help, value) in io {
            header(name, "counter", help)
            for n in nexuses { text += "\(name){\(labels(n))} \(value(n))\n" }
        }
    }

    static func renderProcess(into text: inout String) {
        let usage = ProcessUsage.current()
        text += "# HELP halyard_process_cpu_seconds_total User and system CPU time of the io-engine process.\n"
        text += "# TYPE halyard_process_cpu_seconds_total counter\nhalyard_process_cpu_seconds_total \(format(usage.cpuSeconds))\n"
        text += "# HELP halyard_process_resident_memory_bytes Resident set size of the io-engine process.\n"
        text += "# TYPE halyard_process_resident_memory_bytes gauge\nhalyard_process_resident_memory_bytes \(usage.residentBytes)\n"
        text += "# HELP halyard_process_threads Threads of the io-engine process.\n"
        text += "# TYPE halyard_process_threads gauge\nhalyard_process_threads \(usage.threads)\n"
    }

    static func format(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e15 ? String(Int64(value)) : String(value)
    }

    static func escape(_ label: String) -> String {
        label.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            .replacingOccurrences(of: "\n", with: "\\n")
    }
}

/// CPU time, resident memory and thread count of this process, from /proc/self/stat.
public struct ProcessUsage: Sendable {
    public var cpuSeconds: Double
    public var residentBytes: UInt64
    public var threads: Int

    public static func current() -> ProcessUsage {
        guard let stat = try? String(contentsOfFile: "/proc/self/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return ProcessUsage(cpuSeconds: 0, residentBytes: 0, threads: 0) }
        // Fields after "(comm)": state is field 3; utime 14, stime 15, num_threads 20, rss 24 (pages).
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        func field(_ n: Int) -> Double { fields.count > n - 3 ? Double(fields[n - 3]) ?? 0 : 0 }
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        let page = UInt64(sysconf(Int32(_SC_PAGESIZE)))
        return ProcessUsage(cpuSeconds: (field(14) + field(15)) / max(ticks, 1),
                            residentBytes: UInt64(field(24)) * page, threads: Int(field(20)))
    }
}

/// Counts every gRPC request by method and final status code.
struct RequestCountingInterceptor: ServerInterceptor {
    let metrics: IOEngineMetrics

    func intercept<Input: Sendable, Output: Sendable>(
        request: StreamingServerRequest<Input>,
        context: ServerContext,
        next: @Sendable (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<Output>
    ) async throws -> StreamingServerResponse<Output> {
        let method = context.descriptor.method
        do {
            let response = try await next(request, context)
            switch response.accepted {
            case .success:
                metrics.countRequest(method: method, code: "ok")
            case .failure(let error):
                metrics.countRequest(method: method, code: "\(error.code)")
            }
            return response
        } catch let error as RPCError {
            metrics.countRequest(method: method, code: "\(error.code)")
            throw error
        } catch {
            metrics.countRequest(method: method, code: "unknown")
            throw error
        }
    }
}
