import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

/// One HTTP/1.1 request to a `halyard nvmf-target` control interface (`ControlAPI`), as
/// `halyard nvmf-target ana|hosts|stats` make it: connect, send, read the answer, close.
enum ControlClient {
    struct Answer {
        var status: HTTPResponseStatus
        var body: Data

        /// The `error` of a JSON error body, else the body as text.
        var errorMessage: String {
            (try? JSONDecoder().decode(ControlErrorBody.self, from: body).error)
                ?? String(decoding: body, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        }
    }

    static func request(_ method: HTTPMethod, _ path: String, body: (some Encodable)? = Optional<ControlErrorBody>.none,
                        to address: ControlAddress, timeout: TimeAmount = .seconds(30)) async throws -> Answer {
        let payload = try body.map { try JSONEncoder().encode($0) } ?? Data()
        let group = MultiThreadedEventLoopGroup.singleton
        let bootstrap = ClientBootstrap(group: group).connectTimeout(.seconds(5))
        let initializer: @Sendable (any Channel) -> EventLoopFuture<NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>> = { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHTTPClientHandlers()
                return try NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>(wrappingChannelSynchronously: channel)
            }
        }
        let connection: NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>
        do {
            switch address {
            case .unix(let socketPath):
                connection = try await bootstrap.connect(unixDomainSocketPath: socketPath, channelInitializer: initializer)
            case .loopback(let host, let port):
                connection = try await bootstrap.connect(host: host, port: port, channelInitializer: initializer)
            }
        } catch {
            throw ControlClientError.unreachable(address, "\(error)")
        }
        let deadline = connection.channel.eventLoop.scheduleTask(in: timeout) { connection.channel.close(promise: nil) }
        defer { deadline.cancel() }
        return try await connection.executeThenClose { inbound, outbound in
            var headers = HTTPHeaders()
            headers.add(name: "Host", value: "localhost")
            headers.add(name: "Connection", value: "close")
            if !payload.isEmpty {
                headers.add(name: "Content-Type", value: "application/json")
            }
            headers.add(name: "Content-Length", value: String(payload.count))
            try await outbound.write(.head(HTTPRequestHead(version: .http1_1, method: method, uri: path, headers: headers)))
            if !payload.isEmpty { try await outbound.write(.body(.byteBuffer(ByteBuffer(bytes: payload)))) }
            try await outbound.write(.end(nil))
            var status: HTTPResponseStatus?
            var received = Data()
            for try await part in inbound {
                switch part {
                case .head(let h): status = h.status
                case .body(let chunk): received.append(contentsOf: chunk.readableBytesView)
                case .end:
                    guard let status else { break }
                    return Answer(status: status, body: received)
                }
            }
            throw ControlClientError.noAnswer(address)
        }
    }
}

/// The control interface could not be used.
enum ControlClientError: Error, CustomStringConvertible {
    case unreachable(ControlAddress, String)
    case noAnswer(ControlAddress)

    var description: String {
        switch self {
        case .unreachable(let a, let why): "control interface \(a) unreachable: \(why)"
        case .noAnswer(let a): "control interface \(a) closed the connection without an answer"
        }
    }
}
