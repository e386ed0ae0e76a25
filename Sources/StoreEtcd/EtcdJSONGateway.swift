import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import Store
import SwiftProtobuf

/// A client of etcd's HTTP/JSON gateway (`POST /v3/kv/range|txn`, same port as gRPC), kept to
/// measure it against the gRPC client (`halyard store bench`, Benchmarks/README "Store"): the
/// same protobuf messages encoded as JSON (base64 bytes, int64 as strings) over one keep-alive
/// HTTP/1.1 connection (``withConnection(endpoint:_:)``), one request at a time. Not used by the io-engine: the gRPC client won.
public actor EtcdJSONGateway {
    private var inbound: NIOAsyncChannelInboundStream<HTTPClientResponsePart>.AsyncIterator
    private let outbound: NIOAsyncChannelOutboundWriter<HTTPClientRequestPart>
    private let host: String

    private init(inbound: NIOAsyncChannelInboundStream<HTTPClientResponsePart>.AsyncIterator,
                 outbound: NIOAsyncChannelOutboundWriter<HTTPClientRequestPart>, host: String) {
        self.inbound = inbound
        self.outbound = outbound
        self.host = host
    }

    /// Connects to `host:port`, runs `body` with the connection, closes it.
    public static func withConnection<T: Sendable>(endpoint: String, _ body: (EtcdJSONGateway) async throws -> T) async throws -> T {
        let (host, port) = try EtcdStore.parse(endpoint: endpoint)
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .connect(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    return try NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>(wrappingChannelSynchronously: channel)
                }
            }
        return try await channel.executeThenClose { inbound, outbound in
            try await body(EtcdJSONGateway(inbound: inbound.makeAsyncIterator(), outbound: outbound, host: host))
        }
    }

    /// `POST /v3/kv/range`.
    public func range(_ range: KeyRange, revision: Int64?, limit: Int) async throws -> RangeResult {
        let response: Etcdserverpb_RangeResponse = try await post("/v3/kv/range", Etcdserverpb_RangeRequest(range, revision: revision, limit: limit))
        return RangeResult(response)
    }

    /// `POST /v3/kv/txn`.
    public func transaction(_ transaction: Transaction) async throws -> TransactionResult {
        let response: Etcdserverpb_TxnResponse = try await post("/v3/kv/txn", Etcdserverpb_TxnRequest(transaction))
        return TransactionResult(response)
    }

    private func post<Request: SwiftProtobuf.Message, Response: SwiftProtobuf.Message>(
        _ path: String, _ request: Request
    ) async throws -> Response {
        var encoding = JSONEncodingOptions()
        encoding.preserveProtoFieldNames = true
        let body = try request.jsonUTF8Data(options: encoding)
        var headers = HTTPHeaders()
        headers.add(name: "Host", value: host)
        headers.add(name: "Content-Type", value: "application/json")
        headers.add(name: "Content-Length", value: String(body.count))
        try await outbound.write(contentsOf: [
            .head(HTTPRequestHead(version: .http1_1, method: .POST, uri: path, headers: headers)),
            .body(.byteBuffer(ByteBuffer(bytes: body))),
            .end(nil),
        ])
        var status: HTTPResponseStatus = .ok
        var received = ByteBuffer()
        var iterator = inbound
        defer { inbound = iterator }
        while let part = try await iterator.next(isolation: self) {
            switch part {
            case .head(let head): status = head.status
            case .body(var chunk): received.writeBuffer(&chunk)
            case .end:
                let data = Data(received.readableBytesView)
                guard status == .ok else {
                    throw StoreError.unavailable("etcd gateway \(path): \(status.code) \(String(decoding: data, as: UTF8.self))")
                }
                var decoding = JSONDecodingOptions()
                decoding.ignoreUnknownFields = true
                return try Response(jsonUTF8Data: data, options: decoding)
            }
        }
        throw StoreError.unavailable("etcd gateway closed the connection")
    }
}
