import NIOCore
import NIOPosix
import NVMeHost
import Synchronization

/// A tiny TCP proxy for tests: listens on 127.0.0.1 and forwards every connection to `upstream`.
/// The test can cut the path (`stop()`: close the listener and every connection, so reconnects
/// are refused), bring it back on the same port (`start()`), or silently swallow all traffic
/// (`blackhole`) to simulate a partition that only a keep-alive timeout detects.
final class TCPProxy: Sendable {
    let upstream: TransportAddress
    let group: any EventLoopGroup
    private struct State {
        var listener: (any Channel)?
        var port = 0
        var connections: [ObjectIdentifier: any Channel] = [:]
    }
    private let state = Mutex(State())
    private let swallowing = Atomic<Bool>(false)

    init(upstream: TransportAddress, group: any EventLoopGroup) {
        self.upstream = upstream
        self.group = group
    }

    /// Where hosts connect.
    var address: TransportAddress { TransportAddress(host: "127.0.0.1", port: state.withLock { $0.port }) }

    var connectionCount: Int { state.withLock { $0.connections.count } }

    /// While true, bytes in both directions are dropped (connections stay up).
    var blackhole: Bool {
        get { swallowing.load(ordering: .relaxed) }
        set { swallowing.store(newValue, ordering: .relaxed) }
    }

    /// Binds (port 0 the first time, the same port afterwards).
    func start() async throws {
        let port = state.withLock { $0.port }
        let upstream = self.upstream
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { [self] inbound in
                ClientBootstrap(group: inbound.eventLoop)
                    .channelOption(.socketOption(.tcp_nodelay), value: 1)
                    .connectTimeout(.seconds(2))
                    .connect(host: upstream.host, port: upstream.port)
                    .flatMapThrowing { outbound in
                        let a = ProxyGlue(proxy: self)
                        let b = ProxyGlue(proxy: self)
                        a.partner = b
                        b.partner = a
                        try inbound.pipeline.syncOperations.addHandler(a)
                        try outbound.pipeline.syncOperations.addHandler(b)
                        self.track(inbound)
                        self.track(outbound)
                    }
            }
            .bind(host: "127.0.0.1", port: port).get()
        state.withLock {
            $0.listener = channel
            $0.port = channel.localAddress!.port!
        }
    }

    /// Cuts the path: no more connections, and the existing ones are closed.
    func stop() async {
        let listener = state.withLock { s -> (any Channel)? in defer { s.listener = nil }; return s.listener }
        try? await listener?.close()
        await killConnections()
    }

    /// Closes every proxied connection (the listener stays).
    func killConnections() async {
        let all = state.withLock { s -> [any Channel] in defer { s.connections = [:] }; return Array(s.connections.values) }
        for c in all { try? await c.close() }
    }

    private func track(_ channel: any Channel) {
        let id = ObjectIdentifier(channel)
        state.withLock { $0.connections[id] = channel }
        channel.closeFuture.whenComplete { [weak self] _ in
            _ = self?.state.withLock { $0.connections.removeValue(forKey: id) }
        }
    }

    fileprivate var isSwallowing: Bool { swallowing.load(ordering: .relaxed) }
}

/// One side of a proxied connection: what it reads goes out of its partner (both channels live
/// on one event loop, so the pair needs no locking).
private final class ProxyGlue: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let proxy: TCPProxy
    var partner: ProxyGlue?
    private var context: ChannelHandlerContext?

    init(proxy: TCPProxy) {
        self.proxy = proxy
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        partner = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !proxy.isSwallowing, let peer = partner?.context else { return }
        peer.writeAndFlush(data, promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        partner?.context?.close(promise: nil)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
