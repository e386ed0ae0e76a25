import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2Posix
import GRPCProtobuf
import Logging
import Store
import Synchronization

/// The etcd v3 backend of ``Store``: a gRPC client (generated from etcd 3.4's `rpc.proto`,
/// `Protos/etcd`) over one HTTP/2 connection to an etcd server's client URL. Every unary call
/// carries a deadline (``Configuration/callTimeout``): when etcd is unreachable the call fails
/// with ``StoreError/unavailable(_:)`` after at most that long instead of hanging. Watches and
/// lease keep-alives use etcd's bidirectional streams.
public final class EtcdStore: Store {
    /// Connection settings.
    public struct Configuration: Sendable {
        /// `host:port` (or `http://host:port`) of an etcd client URL.
        public var endpoint: String
        /// The deadline of each unary call.
        public var callTimeout: Duration
        /// The largest response accepted (etcd may answer big range reads).
        public var maxResponseBytes: Int

        public init(endpoint: String, callTimeout: Duration = .seconds(5), maxResponseBytes: Int = 64 << 20) {
            self.endpoint = endpoint
            self.callTimeout = callTimeout
            self.maxResponseBytes = maxResponseBytes
        }
    }

    private typealias Transport = HTTP2ClientTransport.Posix

    public let configuration: Configuration
    private let client: GRPCClient<Transport>
    private let kv: Etcdserverpb_KV.Client<Transport>
    private let watchClient: Etcdserverpb_Watch.Client<Transport>
    private let leaseClient: Etcdserverpb_Lease.Client<Transport>
    private let runTask: Task<Void, Never>
    private let state = Mutex(State())
    private let logger: Logger

    private struct State {
        var closed = false
        var watches: [UInt64: @Sendable () -> Void] = [:]  // id → stop (cancel + finish with .closed)
        var nextWatch: UInt64 = 0
    }

    /// Connects to etcd at `configuration.endpoint`. The connection is made lazily and re-made
    /// after failures; calls made meanwhile wait (up to their deadline) for it.
    public init(_ configuration: Configuration, logger: Logger = Logger(label: "halyard.store.etcd")) throws(StoreError) {
        self.configuration = configuration
        self.logger = logger
        let (host, port) = try Self.parse(endpoint: configuration.endpoint)
        let target: any ResolvableTarget = host.split(separator: ".").count == 4 && host.allSatisfy({ $0.isNumber || $0 == "." })
            ? .ipv4(address: host, port: port) : .dns(host: host, port: port)
        let transport: Transport
        do {
            var config = HTTP2ClientTransport.Posix.Config.defaults
            // etcd's server PINGs once per call; see EtcdPingResponder.
            config.channelDebuggingCallbacks.onCreateTCPConnection = { channel in
                channel.pipeline.addHandler(EtcdPingResponder(), position: .first)
            }
            transport = try .http2NIOPosix(target: target, transportSecurity: .plaintext, config: config)
        } catch {
            throw .invalidArgument("etcd endpoint \(configuration.endpoint): \(error)")
        }
        let client = GRPCClient(transport: transport)
        self.client = client
        self.kv = Etcdserverpb_KV.Client(wrapping: client)
        self.watchClient = Etcdserverpb_Watch.Client(wrapping: client)
        self.leaseClient = Etcdserverpb_Lease.Client(wrapping: client)
        self.runTask = Task {
            do { try await client.runConnections() } catch {
                logger.error("etcd client stopped", metadata: ["error": "\(error)"])
            }
        }
    }

    /// Convenience: `EtcdStore(.init(endpoint: endpoint))`.
    public convenience init(endpoint: String) throws(StoreError) {
        try self.init(Configuration(endpoint: endpoint))
    }

    static func parse(endpoint: String) throws(StoreError) -> (String, Int) {
        var rest = Substring(endpoint)
        if rest.hasPrefix("http://") { rest = rest.dropFirst("http://".count) }
        if rest.hasPrefix("etcd://") { rest = rest.dropFirst("etcd://".count) }
        if rest.hasSuffix("/") { rest = rest.dropLast() }
        guard let colon = rest.lastIndex(of: ":"), let port = Int(rest[rest.index(after: colon)...]),
              (1...65535).contains(port), colon > rest.startIndex else {
            throw .invalidArgument("etcd endpoint '\(endpoint)' is not host:port")
        }
        return (String(rest[..<colon]), port)
    }

    private var options: CallOptions {
        var options = CallOptions.defaults
        options.timeout = configuration.callTimeout
        options.maxResponseMessageBytes = configuration.maxResponseBytes
        return options
    }

    private func call<R: Sendable>(
        revision: Int64? = nil, lease: LeaseID? = nil, _ body: () async throws -> R
    ) async throws(StoreError) -> R {
        if state.withLock({ $0.closed }) { throw .closed }
        do {
            return try await body()
        } catch {
            if state.withLock({ $0.closed }) { throw .closed }
            throw EtcdErrors.map(error, revision: revision, lease: lease)
        }
    }

    // MARK: KV

    public func range(_ range: KeyRange, revision: Int64?, limit: Int) async throws(StoreError) -> RangeResult {
        let request = Etcdserverpb_RangeRequest(range, revision: revision, limit: limit)
        let options = self.options
        return try await call(revision: revision) {
            RangeResult(try await kv.range(request, options: options))
        }
    }

    public func transaction(_ transaction: Transaction) async throws(StoreError) -> TransactionResult {
        // No client-side validation: etcd itself judges the request (the conformance suite checks
        // that Transaction.validate(), which the embedded backend uses, agrees with it).
        let request = Etcdserverpb_TxnRequest(transaction)
        let options = self.options
        let lease = (transaction.success + transaction.failure).lazy.compactMap { operation -> LeaseID? in
            if case .put(_, _, let lease) = operation, lease != 0 { return lease }
            return nil
        }.first
        return try await call(lease: lease) {
            TransactionResult(try await kv.txn(request, options: options))
        }
    }

    public func compact(revision: Int64) async throws(StoreError) {
        var request = Etcdserverpb_CompactionRequest()
        request.revision = revision
        let options = self.options
        _ = try await call(revision: revision) { try await kv.compact(request, options: options) }
    }

    // MARK: Leases

    public func grantLease(ttlSeconds: Int64) async throws(StoreError) -> Lease {
        guard ttlSeconds > 0 else { throw .invalidArgument("lease TTL must be positive, not \(ttlSeconds)") }
        var request = Etcdserverpb_LeaseGrantRequest()
        request.ttl = ttlSeconds
        let options = self.options
        let response = try await call { try await leaseClient.leaseGrant(request, options: options) }
        if !response.error.isEmpty { throw .unavailable("lease grant: \(response.error)") }
        return Lease(id: response.id, ttlSeconds: response.ttl)
    }

    public func keepAlive(_ lease: LeaseID) async throws(StoreError) -> Int64 {
        var keepAlive = Etcdserverpb_LeaseKeepAliveRequest()
        keepAlive.id = lease
        let request = keepAlive
        let options = self.options
        // One request on etcd's keep-alive stream, one answer; a TTL ≤ 0 means "no such lease".
        let ttl: Int64 = try await call(lease: lease) {
            try await leaseClient.leaseKeepAlive(options: options, requestProducer: { writer in
                try await writer.write(request)
            }, onResponse: { response in
                for try await message in response.messages { return message.ttl }
                throw StoreError.unavailable("etcd closed the keep-alive stream without an answer")
            })
        }
        guard ttl > 0 else { throw .leaseNotFound(lease) }
        return ttl
    }

    public func revokeLease(_ lease: LeaseID) async throws(StoreError) {
        var request = Etcdserverpb_LeaseRevokeRequest()
        request.id = lease
        let options = self.options
        _ = try await call(lease: lease) { try await leaseClient.leaseRevoke(request, options: options) }
    }

    public func timeToLive(_ lease: LeaseID) async throws(StoreError) -> Int64? {
        var request = Etcdserverpb_LeaseTimeToLiveRequest()
        request.id = lease
        let options = self.options
        let response = try await call(lease: lease) { try await leaseClient.leaseTimeToLive(request, options: options) }
        return response.ttl < 0 ? nil : response.ttl
    }

    // MARK: Watch

    public func watch(_ range: KeyRange, fromRevision: Int64?) -> AsyncThrowingStream<[WatchEvent], any Error> {
        let (stream, continuation) = AsyncThrowingStream.makeStream(of: [WatchEvent].self)
        var createRequest = Etcdserverpb_WatchRequest()
        createRequest.createRequest = Etcdserverpb_WatchCreateRequest(range, fromRevision: fromRevision)
        let create = createRequest
        let watchClient = self.watchClient
        let task = Task {
            do {
                try await watchClient.watch(requestProducer: { writer in
                    try await writer.write(create)
                    // Keep our half of the stream open for as long as the watch runs; the RPC's end cancels this.
                    while true { try await Task.sleep(for: .seconds(3600)) }
                }, onResponse: { response in
                    for try await message in response.messages {
                        if message.canceled {
                            if message.compactRevision > 0 { throw StoreError.compacted(message.compactRevision) }
                            throw StoreError.unavailable("etcd cancelled the watch: \(message.cancelReason)")
                        }
                        if !message.events.isEmpty {
                            continuation.yield(message.events.map(WatchEvent.init))
                        }
                    }
                    throw StoreError.unavailable("etcd ended the watch stream")
                })
            } catch {
                continuation.finish(throwing: Task.isCancelled ? CancellationError() : EtcdErrors.map(error))
            }
        }
        let id: UInt64? = state.withLock { state in
            if state.closed { return nil }
            let id = state.nextWatch
            state.nextWatch += 1
            state.watches[id] = {
                continuation.finish(throwing: StoreError.closed)
                task.cancel()
            }
            return id
        }
        guard let id else {
            task.cancel()
            continuation.finish(throwing: StoreError.closed)
            return stream
        }
        continuation.onTermination = { [weak self] _ in
            task.cancel()
            _ = self?.state.withLock { $0.watches.removeValue(forKey: id) }
        }
        return stream
    }

    // MARK: Lifecycle

    public func close() async {
        let stops: [@Sendable () -> Void]? = state.withLock { state in
            if state.closed { return nil }
            state.closed = true
            defer { state.watches.removeAll() }
            return Array(state.watches.values)
        }
        guard let stops else { return }
        for stop in stops { stop() }
        client.beginGracefulShutdown()
        // In-flight unary calls finish within their deadline; then the connection closes.
        await runTask.value
    }
}
