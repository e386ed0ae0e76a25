import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// Serves `ControlAPI` over HTTP/1.1 on a unix socket or a loopback port (`--control`), so that
/// `curl --unix-socket PATH http://localhost/v1/stats` works — and, with another handler, the
/// io-engine's `/metrics`. Requests on one connection are answered in order; keep-alive is
/// honoured. Each connection runs in its own task.
final class ControlServer: Sendable {
    /// What a handler answers: status, Content-Type and body.
    struct Answer: Sendable {
        var status: HTTPResponseStatus
        var contentType: String
        var body: Data
    }

    /// Answers one request (method, URI, body).
    typealias Handler = @Sendable (HTTPMethod, String, ByteBuffer) async -> Answer

    let address: ControlAddress
    /// Where it listens (the bound port for `127.0.0.1:0`).
    let boundAddress: String
    private let server: NIOAsyncChannel<NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>, Never>
    private let serving = Mutex<Task<Void, Never>?>(nil)
    private let logger: Logger

    private init(address: ControlAddress, boundAddress: String,
                 server: NIOAsyncChannel<NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>, Never>, logger: Logger) {
        self.address = address
        self.boundAddress = boundAddress
        self.server = server
        self.logger = logger
    }

    /// Binds `address` (a stale unix socket file is replaced) and starts answering with `api`.
    static func start(address: ControlAddress, api: ControlAPI, group: any EventLoopGroup, logger: Logger) async throws -> ControlServer {
        try await start(address: address, group: group, logger: logger, name: "control interface") { method, uri, body in
            let response = await api.handle(method: method, uri: uri, body: body)
            return Answer(status: response.status, contentType: "application/json", body: response.body)
        }
    }

    /// Binds `address` and answers every request with `handler`; `name` says what it is in the log.
    static func start(address: ControlAddress, group: any EventLoopGroup, logger: Logger, name: String,
                      handler: @escaping Handler) async throws -> ControlServer {
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 16)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
        let initializer: @Sendable (any Channel) -> EventLoopFuture<NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>> = { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                return try NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>(wrappingChannelSynchronously: channel)
            }
        }
        let server: NIOAsyncChannel<NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>, Never>
        let bound: String
        switch address {
        case .unix(let path):
            server = try await bootstrap.bind(unixDomainSocketPath: path, cleanupExistingSocketFile: true, childChannelInitializer: initializer)
            bound = "unix:\(path)"
        case .loopback(let host, let port):
            server = try await bootstrap.bind(host: host, port: port, childChannelInitializer: initializer)
            let p = server.channel.localAddress?.port ?? port
            bound = host.contains(":") ? "[\(host)]:\(p)" : "\(host):\(p)"
        }
        let control = ControlServer(address: address, boundAddress: bound, server: server, logger: logger)
        let task = Task { await control.acceptLoop(handler: handler) }
        control.serving.withLock { $0 = task }
        logger.info("\(name) on \(bound)")
        return control
    }

    private func acceptLoop(handler: @escaping Handler) async {
        do {
            try await server.executeThenClose { inbound in
                for try await connection in inbound {
                    Task { await Self.serve(connection, handler: handler, logger: logger) }
                }
            }
        } catch {
            logger.debug("control interface stopped accepting: \(error)")
        }
    }

    /// One connection: requests in, responses out, until the client closes or asks to.
    private static func serve(_ connection: NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>, handler: Handler, logger: Logger) async {
        do {
            try await connection.executeThenClose { inbound, outbound in
                var head: HTTPRequestHead?
                var body = ByteBuffer()
                var tooLarge = false
                for try await part in inbound {
                    switch part {
                    case .head(let h):
                        head = h
                        body.clear()
                        tooLarge = false
                    case .body(var chunk):
                        if body.readableBytes + chunk.readableBytes > ControlAPI.maximumBodySize {
                            tooLarge = true
                        } else {
                            body.writeBuffer(&chunk)
                        }
                    case .end:
                        guard let request = head else { continue }
                        let response: Answer
                        if tooLarge {
                            let refusal = ControlAPI.Response.error(.payloadTooLarge, "the body is larger than \(ControlAPI.maximumBodySize) bytes")
                            response = Answer(status: refusal.status, contentType: "application/json", body: refusal.body)
                        } else {
                            response = await handler(request.method, request.uri, body)
                        }
                        logger.debug("http: \(request.method) \(request.uri) → \(response.status.code)")
                        var headers = HTTPHeaders()
                        headers.add(name: "Content-Type", value: response.contentType)
                        headers.add(name: "Content-Length", value: String(response.body.count))
                        headers.add(name: "Connection", value: request.isKeepAlive ? "keep-alive" : "close")
                        try await outbound.write(.head(HTTPResponseHead(version: request.version, status: response.status, headers: headers)))
                        try await outbound.write(.body(.byteBuffer(ByteBuffer(bytes: response.body))))
                        try await outbound.write(.end(nil))
                        if !request.isKeepAlive { return }
                        head = nil
                    }
                }
            }
        } catch {
            logger.debug("control connection ended: \(error)")
        }
    }

    /// Stops accepting, and removes the unix socket file.
    func stop() async {
        try? await server.channel.close()
        let task = serving.withLock { t -> Task<Void, Never>? in defer { t = nil }; return t }
        task?.cancel()
        await task?.value
        if case .unix(let path) = address { try? FileManager.default.removeItem(atPath: path) }
    }
}
