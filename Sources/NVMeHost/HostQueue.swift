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
/// has exchanged ICReq/ICResp. Submissions are safe from any thread; completions arrive as
/// futures on the queue's event loop.
public final class HostQueue: Sendable {
    public let channel: any Channel
    public let queueID: UInt16
    public let depth: Int
    public let icResp: ICResp

    init(channel: any Channel, queueID: UInt16, depth: Int, icResp: ICResp) {
        self.channel = channel
        self.queueID = queueID
        self.depth = depth
        self.icResp = icResp
    }

    /// Opens a TCP connection to `address` and exchanges ICReq/ICResp.
    static func open(address: TransportAddress, queueID: UInt16, depth: Int, headerDigest: Bool, dataDigest: Bool,
                     inCapsuleLimit: Int, connectTimeout: TimeAmount, group: any EventLoopGroup) async throws -> HostQueue {
        let channel: any Channel
        let eventLoop = group.next()
        let icRespPromise = eventLoop.makePromise(of: ICResp.self)
        do {
            channel = try await ClientBootstrap(group: eventLoop)
                .connectTimeout(connectTimeout)
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(HostQueueHandler(
                            headerDigest: headerDigest, dataDigest: dataDigest, depth: depth,
                            inCapsuleLimit: inCapsuleLimit, icRespPromise: icRespPromise))
                    }
                }
                .connect(host: address.host, port: address.port).get()
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
        return HostQueue(channel: channel, queueID: queueID, depth: depth, icResp: icResp)
    }

    /// Submits a command; `data` goes to the controller, `readLength` bytes come back.
    public func submit(_ command: SubmissionQueueEntry, data: ByteBuffer? = nil, readLength: Int = 0,
                       timeout: TimeAmount? = .seconds(30)) -> EventLoopFuture<CommandCompletion> {
        let promise = channel.eventLoop.makePromise(of: CommandCompletion.self)
        let request = HostCommand(command: command, data: data, expectedReadLength: readLength, timeout: timeout, promise: promise)
        if channel.eventLoop.inEventLoop {
            // On the queue's own loop (a completion callback submitting the next I/O): write now,
            // flush once at the end of this loop tick, so a burst of submissions costs one syscall.
            channel.write(request).whenFailure { error in
                promise.fail(NVMeHostError.transportClosed("\(error)"))
            }
            let channel = self.channel
            channel.eventLoop.execute { channel.flush() }
        } else {
            channel.writeAndFlush(request).whenFailure { error in
                promise.fail(NVMeHostError.transportClosed("\(error)"))
            }
        }
        return promise.futureResult
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
