import NIOCore

/// Answers the server's HTTP/2 PING frames (RFC 9113 §6.7) in front of the HTTP/2 handler, so
/// they never reach it.
///
/// Why: etcd's gRPC server (grpc-go) estimates the bandwidth-delay product by sending a PING after
/// the first DATA frame it receives once the previous PING was answered — with request/response
/// traffic, about one PING per call. swift-nio-http2's DoS protection closes a connection whose
/// peer sends more than 200 control frames (PING, SETTINGS, …) in 30 s (GOAWAY
/// ENHANCE_YOUR_CALM), and grpc-swift-nio-transport 2.9 does not let a client raise that limit. So
/// after ~200 calls in 30 s every call in flight failed with "Stream unexpectedly closed"
/// (seen in a capture: client GOAWAY 0xb after the server's 200th PING). Acknowledging those
/// PINGs here is what the HTTP/2 handler would have done; everything else passes through
/// unchanged, whole frames at a time. Installed on each connection's channel at the front of the
/// pipeline (plaintext h2c only: it parses the raw frame stream).
final class EtcdPingResponder: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private static let headerLength = 9
    private static let pingType: UInt8 = 0x6
    private static let ackFlag: UInt8 = 0x1

    private var pending: ByteBuffer?
    /// Frames are passed on only once whole; an absurd length would mean a broken stream, which
    /// the HTTP/2 handler itself must see: stop parsing then.
    private var passThrough = false
    private(set) var answered = 0

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var incoming = unwrapInboundIn(data)
        if passThrough {
            context.fireChannelRead(wrapInboundOut(incoming))
            return
        }
        if var buffered = pending {
            buffered.writeBuffer(&incoming)
            incoming = buffered
            pending = nil
        }
        var forward: ByteBuffer?
        var answeredPing = false
        while incoming.readableBytes >= Self.headerLength {
            let start = incoming.readerIndex
            guard let b0 = incoming.getInteger(at: start, as: UInt8.self),
                  let b12 = incoming.getInteger(at: start + 1, as: UInt16.self),
                  let type = incoming.getInteger(at: start + 3, as: UInt8.self),
                  let flags = incoming.getInteger(at: start + 4, as: UInt8.self) else { break }
            let length = Int(b0) << 16 | Int(b12)
            if length > 16 << 20 {  // larger than any SETTINGS_MAX_FRAME_SIZE: not ours to judge
                passThrough = true
                break
            }
            let total = Self.headerLength + length
            guard incoming.readableBytes >= total else { break }
            if type == Self.pingType && flags & Self.ackFlag == 0 && length == 8,
               let payload = incoming.getSlice(at: start + Self.headerLength, length: 8) {
                var ack = context.channel.allocator.buffer(capacity: Self.headerLength + 8)
                ack.writeInteger(UInt8(0))
                ack.writeInteger(UInt16(8))
                ack.writeInteger(Self.pingType)
                ack.writeInteger(Self.ackFlag)
                ack.writeInteger(UInt32(0))  // stream 0
                ack.writeImmutableBuffer(payload)
                context.write(wrapOutboundOut(ack), promise: nil)
                answeredPing = true
                answered += 1
            } else if let frame = incoming.getSlice(at: start, length: total) {
                if forward == nil {
                    forward = frame
                } else {
                    var f = frame
                    forward!.writeBuffer(&f)
                }
            }
            incoming.moveReaderIndex(forwardBy: total)
        }
        if answeredPing { context.flush() }
        if incoming.readableBytes > 0 {
            if passThrough {
                if var f = forward { f.writeBuffer(&incoming); forward = f } else { forward = incoming }
            } else {
                pending = incoming
            }
        }
        if let forward { context.fireChannelRead(wrapInboundOut(forward)) }
    }
}
