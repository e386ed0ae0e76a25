import NIOCore
import NVMe

/// Where a command's completion goes: called once, on the queue's event loop.
public typealias CommandCompletionHandler = (Result<CommandCompletion, any Error>) -> Void

/// The host side of one NVMe/TCP connection (one queue; NVMe/TCP transport spec 1.0 §3.3–§3.6):
/// sends ICReq and checks ICResp, assigns command IDs, sends capsules with in-capsule data or
/// answers R2Ts with H2CData, collects C2HData, and completes each command from its
/// CapsuleResp. Lives on the channel's event loop; nothing in it is shared.
///
/// Commands do not travel through the channel pipeline: `HostQueue` calls ``submit`` directly on
/// the event loop, and the handler writes the encoded PDUs itself, so a command costs no pipeline
/// traversal, no type-erased message box and no write promise. Writes made outside a channel read
/// are flushed once per event-loop tick.
final class HostQueueHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = Never
    typealias OutboundOut = ByteBuffer

    struct Inflight {
        var commandID: UInt16
        var data: ByteBuffer?
        var read: ByteBuffer?
        var readChunks = 0
        var expectedReadLength: Int
        var deadline: NIODeadline?
        var completion: CommandCompletionHandler
    }

    let headerDigest: Bool
    let dataDigest: Bool
    let inCapsuleLimit: Int
    let depth: Int
    let icRespPromise: EventLoopPromise<ICResp>
    private(set) var maxH2CData = 4096
    private var ready = false
    private var context: ChannelHandlerContext?
    private var framer = PDUFramer(maximumLength: 64 << 20)
    /// Slot i holds the command whose CID is i | generation << 12.
    private var slots: [Inflight?]
    private var freeSlots: [Int]
    private var generation: [UInt16]
    /// Expires timed-out commands. Armed for the earliest deadline in flight, and only while a
    /// command with a deadline is in flight: an idle queue (only an Asynchronous Event Request
    /// outstanding) sets no timer, a busy one wakes about once per timeout period, and a command
    /// fails at its deadline, not up to a polling period later.
    private var sweeper: (task: Scheduled<Void>, deadline: NIODeadline)?
    /// Commands in flight with a deadline.
    private var timedCommands = 0
    private var started = false
    private var failure: NVMeHostError?
    /// In `channelRead`: writes are flushed by `channelReadComplete`.
    private var inRead = false
    /// A flush task is queued for the end of this event-loop tick.
    private var flushScheduled = false

    init(headerDigest: Bool, dataDigest: Bool, depth: Int, inCapsuleLimit: Int, icRespPromise: EventLoopPromise<ICResp>) {
        precondition(depth > 0 && depth <= 4096)
        self.headerDigest = headerDigest
        self.dataDigest = dataDigest
        self.depth = depth
        self.inCapsuleLimit = inCapsuleLimit
        self.icRespPromise = icRespPromise
        slots = Array(repeating: nil, count: depth)
        freeSlots = Array((0..<depth).reversed())
        generation = Array(repeating: 0, count: depth)
    }

    // MARK: Lifecycle

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if context.channel.isActive { start(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        start(context: context)
        context.fireChannelActive()
    }

    private func start(context: ChannelHandlerContext) {
        guard !started else { return }
        started = true
        var buffer = context.channel.allocator.buffer(capacity: 128)
        NVMeTCPPDU.icReq(ICReq(headerDigest: headerDigest, dataDigest: dataDigest)).encode(into: &buffer)
        context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
    }

    /// Arms the sweep for `deadline` unless it is armed for that or earlier.
    private func armSweeper(_ eventLoop: any EventLoop, at deadline: NIODeadline) {
        if let armed = sweeper {
            guard deadline < armed.deadline else { return }
            armed.task.cancel()
        }
        let me = NIOLoopBound(self, eventLoop: eventLoop)
        let task = eventLoop.scheduleTask(deadline: deadline) {
            let handler = me.value
            handler.sweeper = nil
            handler.expireTimedOutCommands()
        }
        sweeper = (task, deadline)
    }

    private func cancelSweeper() {
        sweeper?.task.cancel()
        sweeper = nil
    }

    /// Takes a command out of its slot (completed or failed); returns it.
    private func retire(slot: Int) -> Inflight? {
        guard let inflight = slots[slot] else { return nil }
        slots[slot] = nil
        if inflight.deadline != nil { timedCommands -= 1 }
        return inflight
    }

    func channelInactive(context: ChannelHandlerContext) {
        let error = NVMeHostError.transportClosed(failure?.description ?? "connection closed")
        failure = failure ?? error
        fail(error)
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        cancelSweeper()
        failure = failure ?? .transportClosed("queue closed")
        fail(.transportClosed("queue closed"))
        self.context = nil
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        failure = .transportClosed("\(error)")
        context.close(promise: nil)
    }

    /// Fails everything in flight (and the ICResp wait) with `error`.
    private func fail(_ error: NVMeHostError) {
        icRespPromise.fail(error)
        var failed: [CommandCompletionHandler] = []
        for i in slots.indices {
            if let inflight = retire(slot: i) { failed.append(inflight.completion) }
        }
        freeSlots = Array((0..<depth).reversed())
        cancelSweeper()
        // After the slots are consistent: a handler may submit again (and fail at once).
        for completion in failed { completion(.failure(error)) }
    }

    private func abort(_ error: NVMeHostError) {
        failure = error
        fail(error)
        context?.close(promise: nil)
    }

    // MARK: Sending

    /// Sends a command; `completion` runs on the event loop when it completes or fails. Must be
    /// called on the channel's event loop.
    func submit(_ command: SubmissionQueueEntry, data: ByteBuffer?, expectedReadLength: Int, timeout: TimeAmount?,
                completion: @escaping CommandCompletionHandler) {
        guard let context else {
            return completion(.failure(failure ?? NVMeHostError.transportClosed("queue closed")))
        }
        if let failure {
            return completion(.failure(failure))
        }
        guard ready else {
            return completion(.failure(NVMeHostError.connectFailed("queue not ready (no ICResp yet)")))
        }
        guard let slot = freeSlots.popLast() else {
            return completion(.failure(NVMeHostError.queueFull))
        }
        generation[slot] = (generation[slot] &+ 1) & 0xF
        let cid = UInt16(slot) | generation[slot] << 12
        var sqe = command
        sqe.commandID = cid
        let writeLength = data?.readableBytes ?? 0
        let isFabrics = sqe.opcode == AdminOpcode.fabrics.rawValue
        let limit = isFabrics ? max(8192, inCapsuleLimit) : inCapsuleLimit
        var capsuleData: ByteBuffer?
        if let data, writeLength > 0 {
            if writeLength <= limit {
                sqe.dataPointer = .inCapsule(length: UInt32(writeLength))
                capsuleData = data
            } else {
                sqe.dataPointer = .transport(length: UInt32(writeLength))
            }
        } else {
            sqe.dataPointer = .transport(length: UInt32(expectedReadLength))
        }
        slots[slot] = Inflight(
            commandID: cid, data: writeLength > limit ? data : nil, read: nil,
            expectedReadLength: expectedReadLength,
            deadline: timeout.map { .now() + $0 }, completion: completion)
        if let deadline = slots[slot]?.deadline {
            timedCommands += 1
            armSweeper(context.eventLoop, at: deadline)
        }
        var header = context.channel.allocator.buffer(capacity: 80)
        NVMeTCPPDU.capsuleCommand(CapsuleCommand(command: sqe, data: ByteBuffer()))
            .encodeHeader(into: &header, headerDigest: headerDigest, dataDigest: dataDigest, dataLength: capsuleData?.readableBytes ?? 0)
        context.write(wrapOutboundOut(header), promise: nil)
        if let capsuleData {
            writeData(capsuleData, context: context)
        }
        scheduleFlush(context: context)
    }

    /// Flushes at the end of the channel read, or once at the end of this event-loop tick, so a
    /// burst of submissions costs one system call.
    private func scheduleFlush(context: ChannelHandlerContext) {
        guard !inRead, !flushScheduled else { return }
        flushScheduled = true
        let me = NIOLoopBound(self, eventLoop: context.eventLoop)
        context.eventLoop.execute {
            let handler = me.value
            handler.flushScheduled = false
            handler.context?.flush()
        }
    }

    private func writeData(_ data: ByteBuffer, context: ChannelHandlerContext) {
        context.write(wrapOutboundOut(data), promise: nil)
        if dataDigest {
            var digest = context.channel.allocator.buffer(capacity: 4)
            digest.writeInteger(CRC32C.checksum(data), endianness: .little)
            context.write(wrapOutboundOut(digest), promise: nil)
        }
    }

    // MARK: Receiving

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        framer.append(unwrapInboundIn(data))
        inRead = true
        defer { inRead = false }
        while failure == nil {
            let decoded: DecodedPDU?
            do {
                decoded = try framer.next()
            } catch {
                abort(.protocolError(error.error.description))
                return
            }
            guard let decoded else { return }
            handle(decoded, context: context)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.flush()
        context.fireChannelReadComplete()
    }

    private func slotIndex(for cid: UInt16) -> Int? {
        let slot = Int(cid & 0x0FFF)
        guard slot < depth, let inflight = slots[slot], inflight.commandID == cid else { return nil }
        return slot
    }

    private func handle(_ decoded: DecodedPDU, context: ChannelHandlerContext) {
        if ready, decoded.pdu.type != .c2hTermReq, decoded.headerDigest != headerDigest {
            return abort(.protocolError("header digest flag \(decoded.headerDigest) on \(decoded.pdu.type), negotiated \(headerDigest)"))
        }
        switch decoded.pdu {
        case .icResp(let resp):
            guard !ready else { return abort(.protocolError("second ICResp")) }
            guard resp.headerDigest == headerDigest, resp.dataDigest == dataDigest else {
                return abort(.connectFailed("ICResp digests (\(resp.headerDigest), \(resp.dataDigest)) differ from the request"))
            }
            guard resp.controllerPDUDataAlignment == 0 else { return abort(.connectFailed("CPDA \(resp.controllerPDUDataAlignment) unsupported")) }
            guard resp.maxH2CData >= 4096, resp.maxH2CData % 4 == 0 else { return abort(.connectFailed("MAXH2CDATA \(resp.maxH2CData) invalid")) }
            maxH2CData = Int(resp.maxH2CData)
            ready = true
            icRespPromise.succeed(resp)
        case .capsuleResponse(let response):
            let cqe = response.completion
            guard let slot = slotIndex(for: cqe.commandID) else {
                return abort(.protocolError("completion for unknown CID \(cqe.commandID)"))
            }
            let inflight = retire(slot: slot)!
            freeSlots.append(slot)
            let data = inflight.read ?? ByteBuffer()
            if cqe.status.isSuccess, data.readableBytes != inflight.expectedReadLength, inflight.expectedReadLength > 0 {
                inflight.completion(.failure(NVMeHostError.protocolError("short read: \(data.readableBytes) of \(inflight.expectedReadLength) bytes")))
            } else {
                inflight.completion(.success(CommandCompletion(entry: cqe, data: data)))
            }
        case .c2hData(let chunk):
            guard decoded.dataDigest == dataDigest else { return abort(.protocolError("data digest flag differs from the negotiated one")) }
            guard let slot = slotIndex(for: chunk.commandID) else {
                return abort(.protocolError("C2HData for unknown CID \(chunk.commandID)"))
            }
            var inflight = slots[slot]!
            let have = inflight.read?.readableBytes ?? 0
            guard Int(chunk.dataOffset) == have, have + chunk.data.readableBytes <= inflight.expectedReadLength else {
                return abort(.protocolError("C2HData offset \(chunk.dataOffset)+\(chunk.data.readableBytes) outside \(have) of \(inflight.expectedReadLength)"))
            }
            guard decoded.dataDigestValid else {
                // NVMe/TCP transport spec 1.0 §3.6.2.7: the command fails; the connection is suspect.
                return abort(.protocolError("data digest mismatch on C2HData for CID \(chunk.commandID)"))
            }
            if var read = inflight.read {
                var d = chunk.data
                read.writeBuffer(&d)
                inflight.read = read
            } else if chunk.data.readableBytes == inflight.expectedReadLength {
                inflight.read = chunk.data  // the whole transfer in one PDU: no copy
            } else {
                var read = context.channel.allocator.buffer(capacity: inflight.expectedReadLength)
                var d = chunk.data
                read.writeBuffer(&d)
                inflight.read = read
            }
            if chunk.success {
                guard chunk.last, inflight.read?.readableBytes == inflight.expectedReadLength else {
                    return abort(.protocolError("SUCCESS flag on a short or non-final C2HData"))
                }
                _ = retire(slot: slot)
                freeSlots.append(slot)
                inflight.completion(.success(CommandCompletion(
                    entry: CompletionQueueEntry(submissionQueueHead: 0xFFFF, commandID: chunk.commandID), data: inflight.read!)))
            } else {
                slots[slot] = inflight
            }
        case .r2t(let r2t):
            guard let slot = slotIndex(for: r2t.commandID), let data = slots[slot]!.data else {
                return abort(.protocolError("R2T for CID \(r2t.commandID) that has no data to send"))
            }
            let end = Int(r2t.offset) + Int(r2t.length)
            guard end <= data.readableBytes else {
                return abort(.protocolError("R2T \(r2t.offset)+\(r2t.length) beyond \(data.readableBytes) bytes"))
            }
            var offset = Int(r2t.offset)
            while offset < end {
                let n = min(maxH2CData, end - offset)
                let chunk = data.getSlice(at: data.readerIndex + offset, length: n)!
                let pdu = NVMeTCPPDU.h2cData(DataTransfer(commandID: r2t.commandID, transferTag: r2t.transferTag,
                                                          dataOffset: UInt32(offset), last: offset + n == end, data: ByteBuffer()))
                var header = context.channel.allocator.buffer(capacity: 32)
                pdu.encodeHeader(into: &header, headerDigest: headerDigest, dataDigest: dataDigest, dataLength: n)
                context.write(wrapOutboundOut(header), promise: nil)
                writeData(chunk, context: context)
                offset += n
            }
        case .c2hTermReq(let t):
            abort(.terminatedByTarget(status: t.status, information: t.information))
        default:
            abort(.protocolError("unexpected \(decoded.pdu.type) from the target"))
        }
    }

    /// Fails the queue if a command is past its deadline; else re-arms for the earliest one left.
    private func expireTimedOutCommands() {
        let now = NIODeadline.now()
        var earliest: NIODeadline?
        for slot in slots.indices {
            guard let inflight = slots[slot], let deadline = inflight.deadline else { continue }
            if deadline <= now {
                // The target may still answer this CID; the queue cannot be trusted any more.
                abort(.timeout(commandID: inflight.commandID))
                return
            }
            earliest = min(earliest ?? deadline, deadline)
        }
        if let earliest, let context, failure == nil { armSweeper(context.eventLoop, at: earliest) }
    }
}
