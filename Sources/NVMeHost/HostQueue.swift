import NIOCore
import NIOPosix
import NVMe

/// Where a target listens.
public struct TransportAddress: Hashable, Sendable, CustomStringConvertible {
    public var host: String
    public var port: Int
    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }
    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// One connected NVMe/TCP queue of a host (admin queue 0 or an I/O queue): a TCP connection that
/// has exchanged ICReq/ICResp. `submit` is safe from any thread, its future completes on the
/// queue's event loop; `submitOnEventLoop` is the allocation-light form for code that already runs
/// on that loop (a completion submitting the next I/O).
public final class HostQueue: Sendable {
    public let channel: any Channel
    public let queueID: UInt16
    public let depth: Int
    public let icResp: ICResp
    private let handler: NIOLoopBound<HostQueueHandler>

    init(channel: any Channel, handler: NIOLoopBound<HostQueueHandler>, queueID: UInt16, depth: Int, icResp: ICResp) {
        self.channel = channel
        self.handler = handler
        self.queueID = queueID
        self.depth = depth
        self.icResp = icResp
    }

    /// The event loop every completion runs on.
    public var eventLoop: any EventLoop { channel.eventLoop }

    /// Opens a TCP connection to `address` and exchanges ICReq/ICResp.
    static func open(address: TransportAddress, queueID: UInt16, depth: Int, headerDigest: Bool, dataDigest: Bool,
                     inCapsuleLimit: Int, connectTimeout: TimeAmount, group: any EventLoopGroup) async throws -> HostQueue {
        let channel: any Channel
        let handler: NIOLoopBound<HostQueueHandler>
        let eventLoop = group.next()
        let icRespPromise = eventLoop.makePromise(of: ICResp.self)
        do {
            (channel, handler) = try await ClientBootstrap(group: eventLoop)
                .connectTimeout(connectTimeout)
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                // Reads up to 256 KiB: a large C2HData PDU usually arrives in one or two reads
                // and is then sliced, not reassembled.
                .channelOption(.recvAllocator, value: AdaptiveRecvByteBufferAllocator(minimum: 64, initial: 2048, maximum: 256 << 10))
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(HostQueueHandler(
                            headerDigest: headerDigest, dataDigest: dataDigest, depth: depth,
                            inCapsuleLimit: inCapsuleLimit, icRespPromise: icRespPromise))
                    }
                }
                .connect(host: address.host, port: address.port)
                .flatMapThrowing { channel in
                    let handler = try channel.pipeline.syncOperations.handler(type: HostQueueHandler.self)
                    return (channel, NIOLoopBound(handler, eventLoop: channel.eventLoop))
                }
                .get()
        } catch {
            icRespPromise.fail(NVMeHostError.transportClosed("cannot connect"))
            throw NVMeHostError.transportClosed("cannot connect to \(address): \(error)")
        }
        let icResp: ICResp
        do {
            icResp = try await icRespPromise.futureResult.withTimeout(connectTimeout, on: eventLoop).get()
        } catch {
            try? await channel.close()
            throw error is NVMeHostError ? error : NVMeHostError.connectFailed("no ICResp from \(address): \(error)")
        }
        return HostQueue(channel: channel, handler: handler, queueID: queueID, depth: depth, icResp: icResp)
    }

    /// Submits a command; `data` goes to the controller, `readLength` bytes come back.
    public func submit(_ command: SubmissionQueueEntry, data: ByteBuffer? = nil, readLength: Int = 0,
                       timeout: TimeAmount? = .seconds(30)) -> EventLoopFuture<CommandCompletion> {
        let promise = channel.eventLoop.makePromise(of: CommandCompletion.self)
        let handler = self.handler
        if channel.eventLoop.inEventLoop {
            handler.value.submit(command, data: data, expectedReadLength: readLength, timeout: timeout) { promise.completeWith($0) }
        } else {
            channel.eventLoop.execute {
                handler.value.submit(command, data: data, expectedReadLength: readLength, timeout: timeout) { promise.completeWith($0) }
            }
        }
        return promise.futureResult
    }

    /// Submits a command from the queue's own event loop; `completion` runs on that loop (at once,
    /// with the error, when the queue cannot take the command). No future, no thread hop.
    /// - Precondition: called on `eventLoop`.
    public func submitOnEventLoop(_ command: SubmissionQueueEntry, data: ByteBuffer? = nil, readLength: Int = 0,
                                  timeout: TimeAmount? = .seconds(30), completion: @escaping CommandCompletionHandler) {
        handler.value.submit(command, data: data, expectedReadLength: readLength, timeout: timeout, completion: completion)
    }

    /// Submits and waits; an error status becomes `NVMeHostError.status`.
    public func execute(_ command: SubmissionQueueEntry, data: ByteBuffer? = nil, readLength: Int = 0,
                        timeout: TimeAmount? = .seconds(30)) async throws -> CommandCompletion {
        let completion = try await submit(command, data: data, readLength: readLength, timeout: timeout).get()
        guard completion.entry.status.isSuccess else {
            throw NVMeHostError.status(completion.entry.status, commandID: completion.entry.commandID)
        }
        return completion
    }

    public func close() async {
        try? await channel.close()
    }

    public var isActive: Bool { channel.isActive }
}

extension EventLoopFuture where Value: Sendable {
    /// Fails with `NVMeHostError.timeout` unless the future completes within `timeout`.
    func withTimeout(_ timeout: TimeAmount, on eventLoop: any EventLoop) -> EventLoopFuture<Value> {
        let promise = eventLoop.makePromise(of: Value.self)
        let task = eventLoop.scheduleTask(in: timeout) { promise.fail(NVMeHostError.timeout(commandID: 0xFFFF)) }
        self.hop(to: eventLoop).whenComplete { result in
            task.cancel()
            promise.completeWith(result)
        }
        return promise.futureResult
    }
}
