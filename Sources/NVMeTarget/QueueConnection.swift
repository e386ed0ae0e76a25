import Logging
import NIOCore
import NVMe

/// One NVMe/TCP connection of the target: one queue (admin or I/O) of one controller (NVMe/TCP
/// transport spec 1.0 §3.3–§3.6). It frames PDUs, runs the connection state machine
/// (ICReq → Connect → commands), moves data (in-capsule, R2T/H2CData, C2HData) and sends
/// completions. Every field is touched only on the channel's event loop.
///
/// Commands of one queue run concurrently: each is dispatched as it arrives and completes when
/// its backend finishes, so a slow I/O never holds up the others.
final class QueueConnection: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// Where the connection stands.
    enum Phase {
        case awaitingICReq
        case awaitingConnect
        case admin(Controller)
        case io(Controller, queueID: UInt16)
        case closing
    }

    /// A write whose data arrives in H2CData PDUs after our R2T.
    struct PendingTransfer {
        var command: SubmissionQueueEntry
        var length: Int
        var received: Int = 0
        var chunks: [ByteBuffer] = []
        var digestFailed = false
    }

    let context: TargetContext
    var listener: ListenerConfiguration
    var logger: Logger
    var phase = Phase.awaitingICReq
    var headerDigest = false
    var dataDigest = false
    var submissionQueueSize: UInt16 = 31
    var submissionQueueHead: UInt16 = 0
    var flowControlDisabled = false
    var framer: PDUFramer
    var transfers: [UInt16: PendingTransfer] = [:]
    var nextTransferTag: UInt16 = 0
    var outstanding = 0
    var channelContext: ChannelHandlerContext?
    var inReadLoop = false
    var needsFlush = false
    /// PDU headers and completions waiting to be written: many small PDUs leave as one buffer.
    var output = ByteBuffer()
    static let outputCapacity = 1024
    /// The controller and queue ID once Connect succeeded; kept through `.closing` for teardown.
    var attachment: (controller: Controller, queueID: UInt16)?

    /// A connection on the discovery listener may only reach the discovery subsystem.
    let isDiscoveryListener: Bool
    /// The listener's index in the target's configuration: its ANA path and counters.
    let listenerIndex: Int
    /// This I/O queue's read/write counters (summed per listener and per controller).
    var ioCounters: QueueIOCounters?

    init(context: TargetContext, listener: ListenerConfiguration, listenerIndex: Int = 0, isDiscoveryListener: Bool = false) {
        self.context = context
        self.listener = listener
        self.listenerIndex = listenerIndex
        self.isDiscoveryListener = isDiscoveryListener
        self.framer = PDUFramer(maximumLength: context.limits.maximumPDULength)
        self.logger = context.logger
    }

    var controller: Controller? {
        switch phase {
        case .admin(let c), .io(let c, _): c
        default: nil
        }
    }

    var queueID: UInt16 {
        if case .io(_, let qid) = phase { return qid }
        return 0
    }

    // MARK: Channel events

    func handlerAdded(context: ChannelHandlerContext) {
        channelContext = context
        // A listener bound to port 0 learns its real port here.
        if let port = context.channel.localAddress?.port { listener.port = port }
        logger[metadataKey: "peer"] = "\(context.remoteAddress?.description ?? "?")"
    }

    func channelInactive(context: ChannelHandlerContext) {
        phase = .closing
        if let (controller, qid) = attachment {
            if qid == 0 {
                logger.info("admin queue disconnected", metadata: ["subnqn": "\(controller.subsystem.nqn)"])
                controller.tearDown(reason: "admin queue closed")
            } else {
                logger.debug("I/O queue \(qid) disconnected")
                controller.detachIOQueue(qid, channel: context.channel)
            }
        }
        if let counters = ioCounters, let controller = attachment?.controller {
            controller.ioCounterSet.retire(counters)
            self.context.listenerCounters(listenerIndex)?.retire(counters)
        }
        transfers.removeAll()
        channelContext = nil
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        logger.debug("connection error: \(error)")
        context.close(promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        framer.append(unwrapInboundIn(data))
        inReadLoop = true
        defer { inReadLoop = false }
        while true {
            if case .closing = phase { return }
            let decoded: DecodedPDU?
            do {
                decoded = try framer.next()
            } catch {
                let fes: FatalErrorStatus = switch error.error.kind {
                case .headerDigestMismatch: .headerDigestError
                case .pduTooLarge: .dataTransferOutOfRange
                default: .invalidHeaderField
                }
                terminate(fes, information: UInt32(error.error.offset), header: error.offendingBytes, reason: error.error.description)
                return
            }
            guard let decoded else { return }
            handle(decoded)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if needsFlush { flushNow() }
        context.fireChannelReadComplete()
    }

    // MARK: PDU dispatch

    private func handle(_ decoded: DecodedPDU) {
        switch (phase, decoded.pdu) {
        case (.awaitingICReq, .icReq(let request)):
            acceptConnection(request)
        case (.awaitingICReq, _):
            terminate(.pduSequenceError, information: 0, pdu: decoded.pdu, reason: "expected ICReq, got \(decoded.pdu.type)")
        case (_, .icReq):
            terminate(.pduSequenceError, information: 0, pdu: decoded.pdu, reason: "second ICReq")
        case (_, .capsuleCommand(let capsule)):
            guard decoded.headerDigest == headerDigest, decoded.dataDigest == (dataDigest && capsule.data.readableBytes > 0) else {
                terminate(.invalidHeaderField, information: 1, pdu: decoded.pdu, reason: "digest flags differ from the negotiated ones")
                return
            }
            receiveCommand(capsule, dataDigestValid: decoded.dataDigestValid)
        case (_, .h2cData(let chunk)):
            guard decoded.headerDigest == headerDigest, decoded.dataDigest == dataDigest else {
                terminate(.invalidHeaderField, information: 1, pdu: decoded.pdu, reason: "digest flags differ from the negotiated ones")
                return
            }
            receiveData(chunk, dataDigestValid: decoded.dataDigestValid, pdu: decoded.pdu)
        case (_, .h2cTermReq(let t)):
            logger.warning("host terminated the connection: FES \(t.status) FEI \(t.information)")
            phase = .closing
            channelContext?.close(promise: nil)
        case (_, let pdu):
            // C2H-direction PDUs never come from a host.
            terminate(.invalidHeaderField, information: 0, pdu: pdu, reason: "unexpected \(pdu.type) from host")
        }
    }

    private func acceptConnection(_ request: ICReq) {
        guard request.pduFormatVersion == 0 else {
            terminate(.invalidHeaderField, information: 8, pdu: .icReq(request), reason: "PFV \(request.pduFormatVersion) unsupported")
            return
        }
        // HPDA is honoured trivially: we send data with CPDA 0 and the host asks for alignment
        // only of data it receives; Linux sends 0. Larger alignments are not supported.
        guard request.hostPDUDataAlignment == 0 else {
            terminate(.invalidHeaderField, information: 10, pdu: .icReq(request), reason: "HPDA \(request.hostPDUDataAlignment) unsupported")
            return
        }
        headerDigest = request.headerDigest
        dataDigest = request.dataDigest
        phase = .awaitingConnect
        send(.icResp(ICResp(headerDigest: request.headerDigest, dataDigest: request.dataDigest, maxH2CData: context.limits.maxH2CData)))
    }

    // MARK: Commands

    private func receiveCommand(_ capsule: CapsuleCommand, dataDigestValid: Bool) {
        let sqe = capsule.command
        submissionQueueHead = submissionQueueHead == submissionQueueSize ? 0 : submissionQueueHead + 1
        outstanding += 1
        guard outstanding <= 2 * (Int(submissionQueueSize) + 1) else {
            terminate(.pduSequenceError, information: 0, pdu: .capsuleCommand(capsule), reason: "host exceeded the queue depth (\(outstanding) outstanding)")
            return
        }
        guard dataDigestValid else { return complete(sqe, .failure(.transientTransportError)) }
        guard sqe.fuse == 0 else { return complete(sqe, .failure(.invalidField)) }
        guard sqe.psdt == SubmissionQueueEntry.psdtSGL else { return complete(sqe, .failure(.invalidField)) }

        let isFabrics = sqe.opcode == AdminOpcode.fabrics.rawValue
        let sgl = sqe.dataPointer
        let inCapsuleLimit = isFabrics || queueID == 0 ? context.limits.adminInCapsuleDataSize : context.limits.ioInCapsuleDataSize
        if capsule.data.readableBytes > 0 {
            guard sgl.isInCapsule, Int(sgl.length) == capsule.data.readableBytes, sgl.address == 0 else {
                return complete(sqe, .failure(.dataSGLLengthInvalid))
            }
            guard capsule.data.readableBytes <= inCapsuleLimit else { return complete(sqe, .failure(.dataSGLLengthInvalid)) }
            guard sqe.dataDirection == .hostToController || isFabrics else { return complete(sqe, .failure(.invalidField)) }
            return dispatch(sqe, data: capsule.data)
        }
        if sgl.isInCapsule {
            guard sgl.length == 0 else { return complete(sqe, .failure(.dataSGLLengthInvalid)) }
            return dispatch(sqe, data: ByteBuffer())
        }
        guard sgl.isTransport else { return complete(sqe, .failure(.sglDescriptorTypeInvalid)) }
        if sgl.length > 0 && sqe.dataDirection == .hostToController && !isFabrics {
            // Data comes after an R2T.
            guard Int(sgl.length) <= context.limits.maxDataTransferSize else { return complete(sqe, .failure(.dataSGLLengthInvalid)) }
            guard case .io = phase else {
                // Admin commands with data up to 8 KiB travel in-capsule; larger ones are not supported.
                return complete(sqe, .failure(.dataSGLLengthInvalid))
            }
            if let expected = IOCommands.expectedDataLength(sqe, namespace: controller?.subsystem.namespace(sqe.namespaceID)),
               expected != Int(sgl.length) {
                return complete(sqe, .failure(.dataSGLLengthInvalid))
            }
            requestData(sqe, length: Int(sgl.length))
            return
        }
        if Int(sgl.length) > context.limits.maxDataTransferSize {
            return complete(sqe, .failure(.dataSGLLengthInvalid))
        }
        dispatch(sqe, data: ByteBuffer())
    }

    private func requestData(_ sqe: SubmissionQueueEntry, length: Int) {
        var tag = nextTransferTag
        while transfers[tag] != nil { tag &+= 1 }
        nextTransferTag = tag &+ 1
        transfers[tag] = PendingTransfer(command: sqe, length: length)
        send(.r2t(ReadyToTransfer(commandID: sqe.commandID, transferTag: tag, offset: 0, length: UInt32(length))))
    }

    private func receiveData(_ chunk: DataTransfer, dataDigestValid: Bool, pdu: NVMeTCPPDU) {
        guard var transfer = transfers[chunk.transferTag] else {
            terminate(.invalidHeaderField, information: 10, pdu: pdu, reason: "H2CData for unknown TTAG \(chunk.transferTag)")
            return
        }
        guard transfer.command.commandID == chunk.commandID else {
            terminate(.invalidHeaderField, information: 8, pdu: pdu, reason: "H2CData CCCID \(chunk.commandID) does not match TTAG \(chunk.transferTag)")
            return
        }
        guard Int(chunk.dataOffset) == transfer.received,
              transfer.received + chunk.data.readableBytes <= transfer.length else {
            terminate(.dataTransferOutOfRange, information: 12, pdu: pdu,
                      reason: "H2CData offset \(chunk.dataOffset)+\(chunk.data.readableBytes) outside the expected \(transfer.received) of \(transfer.length)")
            return
        }
        guard chunk.data.readableBytes <= Int(context.limits.maxH2CData) else {
            terminate(.dataTransferOutOfRange, information: 16, pdu: pdu, reason: "H2CData larger than MAXH2CDATA")
            return
        }
        transfer.received += chunk.data.readableBytes
        transfer.chunks.append(chunk.data)
        if !dataDigestValid { transfer.digestFailed = true }
        let complete = transfer.received == transfer.length
        if complete != chunk.last {
            terminate(.pduSequenceError, information: 0, pdu: pdu, reason: "LAST_PDU flag \(chunk.last) at \(transfer.received) of \(transfer.length) bytes")
            return
        }
        guard complete else {
            transfers[chunk.transferTag] = transfer
            return
        }
        transfers[chunk.transferTag] = nil
        if transfer.digestFailed { return self.complete(transfer.command, .failure(.transientTransportError)) }
        let data: ByteBuffer
        if transfer.chunks.count == 1 {
            data = transfer.chunks[0]
        } else {
            var joined = ByteBufferAllocator().buffer(capacity: transfer.length)
            for var c in transfer.chunks { joined.writeBuffer(&c) }
            data = joined
        }
        dispatch(transfer.command, data: data)
    }

    private func dispatch(_ sqe: SubmissionQueueEntry, data: ByteBuffer) {
        if sqe.opcode == AdminOpcode.fabrics.rawValue {
            return complete(sqe, fabrics(sqe, data: data))
        }
        switch phase {
        case .admin(let controller):
            guard controller.isReady else {
                if controller.isTornDown { channelContext?.close(promise: nil); return }
                return complete(sqe, .failure(.commandSequenceError))
            }
            guard let outcome = AdminCommands(controller: controller, context: context).execute(sqe, data: data) else {
                return  // a parked AER: its completion comes later
            }
            complete(sqe, outcome)
        case .io(let controller, _):
            guard controller.isReady else {
                // A controller being torn down: its queues are closing; answering now with an error
                // would fail the command at the host instead of letting it retry on another path.
                if controller.isTornDown { channelContext?.close(promise: nil); return }
                return complete(sqe, .failure(.commandSequenceError))
            }
            let namespace = controller.subsystem.namespace(sqe.namespaceID)
            // Check order (research/nvme-tcp.md §5): namespace (IOCommands), then this path's ANA
            // state, then reservations (IOCommands). Admin commands never get here.
            if let status = controller.anaPath.ioStatus(namespace: namespace, namespaceID: sqe.namespaceID, subsystem: controller.subsystem) {
                return complete(sqe, .failure(status))
            }
            if let expected = IOCommands.expectedDataLength(sqe, namespace: namespace),
               expected != Int(sqe.dataPointer.length), sqe.opcode != IOOpcode.flush.rawValue, sqe.opcode != IOOpcode.writeZeroes.rawValue {
                return complete(sqe, .failure(.dataSGLLengthInvalid))
            }
            if let counters = ioCounters, namespace != nil {
                if sqe.opcode == IOOpcode.read.rawValue {
                    counters.countRead(bytes: sqe.dataPointer.length)
                } else if sqe.opcode == IOOpcode.write.rawValue {
                    counters.countWrite(bytes: sqe.dataPointer.length)
                }
            }
            guard let eventLoop = channelContext?.eventLoop else { return }
            IOCommands.execute(sqe, data: data, subsystem: controller.subsystem, namespace: namespace,
                               host: controller.hostIdentifier, on: eventLoop) { [self] outcome in
                complete(sqe, outcome)
            }
        default:
            complete(sqe, .failure(.commandSequenceError))
        }
    }

    // MARK: Fabrics (NVMe over Fabrics spec 1.1 §3)

    private func fabrics(_ sqe: SubmissionQueueEntry, data: ByteBuffer) -> CommandOutcome {
        guard let type = FabricsCommandType(rawValue: sqe.fabricsCommandType) else { return .failure(.invalidOpcode) }
        if case .awaitingConnect = phase, type != .connect { return .failure(.commandSequenceError) }
        switch type {
        case .connect:
            return connect(sqe, data: data)
        case .propertyGet:
            guard case .admin(let controller) = phase else { return .failure(.invalidField) }
            let (value, status) = controller.getProperty(PropertyCommand(sqe))
            return CommandOutcome(status: status, dw0: UInt32(truncatingIfNeeded: value), dw1: UInt32(truncatingIfNeeded: value >> 32))
        case .propertySet:
            guard case .admin(let controller) = phase else { return .failure(.invalidField) }
            return CommandOutcome(status: controller.setProperty(PropertyCommand(sqe)))
        case .disconnect:
            // Deletes the queue it arrives on (NVMe over Fabrics spec 1.1 §3.6); on the admin
            // queue that ends the controller.
            var outcome = CommandOutcome.success()
            outcome.closeAfterCompletion = true
            return outcome
        case .authenticationSend, .authenticationReceive:
            return .failure(.invalidOpcode)
        }
    }

    private func connect(_ sqe: SubmissionQueueEntry, data: ByteBuffer) -> CommandOutcome {
        guard case .awaitingConnect = phase else { return .failure(.commandSequenceError) }
        let command = ConnectCommand(sqe)
        var body = data
        guard body.readableBytes == ConnectData.encodedSize, let connectData = try? ConnectData(decoding: &body) else {
            return .failure(.dataSGLLengthInvalid)
        }
        var log = logger
        log[metadataKey: "hostnqn"] = "\(connectData.hostNQN)"
        log[metadataKey: "subnqn"] = "\(connectData.subsystemNQN)"
        guard command.recordFormat == 0 else { return .failure(.connectIncompatibleFormat) }
        // DW0 for Invalid Parameters: IATTR b16 = 1 when the offset is into the Connect data,
        // IPO b15:0 = the offending byte (NVMe over Fabrics spec 1.1 Figure 21).
        guard let subsystem = context.subsystem(nqn: connectData.subsystemNQN),
              !isDiscoveryListener || subsystem.kind == .discovery else {
            log.warning("connect refused: unknown subsystem")
            return .failure(.connectInvalidParameters, dw0: 0x0001_0100)
        }
        guard subsystem.isHostAllowed(connectData.hostNQN) else {
            log.warning("connect refused: host not allowed")
            return .failure(.connectInvalidHost, dw0: 0x0001_0200)
        }
        guard command.submissionQueueSize > 0, Int(command.submissionQueueSize) < context.limits.maxQueueEntries else {
            return .failure(.connectInvalidParameters, dw0: 44)
        }
        guard let channel = channelContext?.channel else { return .failure(.internalError) }
        submissionQueueSize = command.submissionQueueSize
        flowControlDisabled = command.sqFlowControlDisabled
        submissionQueueHead = 0
        if command.queueID == 0 {
            guard connectData.controllerID == ConnectData.dynamicControllerID else {
                return .failure(.connectInvalidParameters, dw0: 0x0001_0010)
            }
            var kato: TimeAmount? = command.keepAliveTimeoutMilliseconds == 0 ? nil : .milliseconds(Int64(command.keepAliveTimeoutMilliseconds))
            if kato == nil && subsystem.kind == .discovery { kato = context.limits.discoveryKeepAliveDefault }
            let eventLoop = channel.eventLoop
            let listener = self.listener
            let limits = context.limits
            let listenerIndex = self.listenerIndex
            let controller: Controller
            switch subsystem.allocateController(hostNQN: connectData.hostNQN, { id in
                Controller(id: id, subsystem: subsystem, hostNQN: connectData.hostNQN, hostID: connectData.hostID,
                           listener: listener, listenerIndex: listenerIndex, keepAliveTimeout: kato, limits: limits,
                           adminEventLoop: eventLoop, logger: log)
            }) {
            case .success(let c):
                controller = c
            case .failure(.hostNotAllowed):
                log.warning("connect refused: host not allowed")
                return .failure(.connectInvalidHost, dw0: 0x0001_0200)
            case .failure(.noControllerIDFree):
                log.warning("connect refused: no controller ID free in \(subsystem.controllerIDRange)")
                return .failure(.connectControllerBusy)
            }
            let me = NIOLoopBound(self, eventLoop: eventLoop)
            controller.attachAdminQueue(channel) { cqe in
                eventLoop.execute { me.value.sendAsyncCompletion(cqe) }
            }
            phase = .admin(controller)
            attachment = (controller, 0)
            logger[metadataKey: "cntlid"] = "\(controller.id)"
            log.info("controller \(controller.id) connected (admin queue, KATO \(command.keepAliveTimeoutMilliseconds) ms, \(listener.host):\(listener.port)\(headerDigest ? ", header digest" : "")\(dataDigest ? ", data digest" : ""))")
            return .success(dw0: UInt32(controller.id))
        }
        guard subsystem.kind == .nvm else { return .failure(.connectInvalidParameters, dw0: 42) }
        guard let controller = subsystem.controller(id: connectData.controllerID, hostNQN: connectData.hostNQN, hostID: connectData.hostID) else {
            return .failure(.connectInvalidParameters, dw0: 0x0001_0010)
        }
        guard controller.isReady else { return .failure(.commandSequenceError) }
        if let status = controller.attachIOQueue(command.queueID, channel: channel) {
            return .failure(status, dw0: status == .connectInvalidParameters ? 42 : 0)
        }
        phase = .io(controller, queueID: command.queueID)
        attachment = (controller, command.queueID)
        let counters = QueueIOCounters()
        ioCounters = counters
        controller.ioCounterSet.attach(counters)
        context.listenerCounters(listenerIndex)?.attach(counters)
        logger[metadataKey: "cntlid"] = "\(controller.id)"
        log.debug("I/O queue \(command.queueID) connected to controller \(controller.id) (depth \(Int(command.submissionQueueSize) + 1))")
        return .success(dw0: UInt32(controller.id))
    }

    // MARK: Sending

    /// Completes `sqe`: data (if any) in C2HData PDUs, then the CapsuleResp.
    private func complete(_ sqe: SubmissionQueueEntry, _ outcome: CommandOutcome) {
        guard channelContext != nil else { return }
        if case .closing = phase { return }
        outstanding -= 1
        if outcome.status.isSuccess, var data = outcome.data {
            // The host's buffer is exactly the SGL length: never send more, pad if we have less.
            let want = Int(sqe.dataPointer.length)
            if data.readableBytes > want {
                data = data.getSlice(at: data.readerIndex, length: want)!
            } else if data.readableBytes < want {
                data.writeZeros(want - data.readableBytes)
            }
            if want > 0 {
                // With SQ flow control disabled the last C2HData may carry SUCCESS and stand for
                // the CapsuleResp (NVMe/TCP transport spec 1.0 §3.6.2.7): one PDU less per read.
                let success = flowControlDisabled && outcome.dw0 == 0 && outcome.dw1 == 0 && !outcome.closeAfterCompletion
                sendData(commandID: sqe.commandID, data: data, success: success)
                if success { return }
            }
        }
        sendCompletion(CompletionQueueEntry(
            dw0: outcome.dw0, dw1: outcome.dw1, submissionQueueHead: flowControlDisabled ? 0xFFFF : submissionQueueHead,
            submissionQueueID: queueID, commandID: sqe.commandID, status: outcome.status))
        if outcome.closeAfterCompletion {
            flushNow()
            phase = .closing
            if let (c, qid) = attachment, qid == 0 { c.tearDown(reason: "Fabrics Disconnect") }
            channelContext?.close(promise: nil)
        }
    }

    /// An AER completing later, from the controller.
    func sendAsyncCompletion(_ cqe: CompletionQueueEntry) {
        guard channelContext != nil else { return }
        if case .closing = phase { return }
        outstanding -= 1
        var cqe = cqe
        cqe.submissionQueueHead = flowControlDisabled ? 0xFFFF : submissionQueueHead
        sendCompletion(cqe)
    }

    private func sendCompletion(_ cqe: CompletionQueueEntry) {
        send(.capsuleResponse(CapsuleResponse(completion: cqe)))
    }

    /// C2HData without copying the payload: the header (and digests) go into the coalesced
    /// output buffer, the data is written as its own buffer.
    private func sendData(commandID: UInt16, data: ByteBuffer, success: Bool) {
        guard let ctx = channelContext else { return }
        let chunkSize = 128 * 1024
        var offset = 0
        let total = data.readableBytes
        while offset < total {
            let length = min(chunkSize, total - offset)
            let chunk = data.getSlice(at: data.readerIndex + offset, length: length)!
            let last = offset + length == total
            let pdu = NVMeTCPPDU.c2hData(DataTransfer(commandID: commandID, dataOffset: UInt32(offset), last: last,
                                                      success: success && last, data: ByteBuffer()))
            pdu.encodeHeader(into: &output, headerDigest: headerDigest, dataDigest: dataDigest, dataLength: length)
            writeOutput(ctx)
            ctx.write(wrapOutboundOut(chunk), promise: nil)
            if dataDigest {
                output.writeInteger(CRC32C.checksum(chunk), endianness: .little)
            }
            offset += length
        }
        scheduleFlush()
    }

    /// Encodes a PDU into the output buffer; it goes out with the next data buffer or flush.
    private func send(_ pdu: NVMeTCPPDU) {
        guard channelContext != nil else { return }
        pdu.encode(into: &output, headerDigest: headerDigest, dataDigest: dataDigest)
        scheduleFlush()
    }

    /// Hands the coalesced PDU bytes to the channel as one buffer. A fresh buffer replaces it, so
    /// the one in flight is never written again (no copy-on-write).
    private func writeOutput(_ ctx: ChannelHandlerContext) {
        guard output.readableBytes > 0 else { return }
        ctx.write(wrapOutboundOut(output), promise: nil)
        output = ctx.channel.allocator.buffer(capacity: Self.outputCapacity)
    }

    private func scheduleFlush() {
        if inReadLoop { needsFlush = true } else { flushNow() }
    }

    private func flushNow() {
        needsFlush = false
        guard let ctx = channelContext else { return }
        writeOutput(ctx)
        ctx.flush()
    }

    // MARK: Fatal errors

    private func terminate(_ status: FatalErrorStatus, information: UInt32, pdu: NVMeTCPPDU, reason: String) {
        var header = ByteBuffer()
        pdu.encodeHeader(into: &header, headerDigest: false, dataDigest: false, dataLength: pdu.data?.readableBytes ?? 0)
        terminate(status, information: information, header: header, reason: reason)
    }

    /// Sends a C2HTermReq (NVMe/TCP transport spec 1.0 §3.6.2.8) and closes this connection only.
    private func terminate(_ status: FatalErrorStatus, information: UInt32, header: ByteBuffer, reason: String) {
        guard let ctx = channelContext else { return }
        if case .closing = phase { return }
        logger.warning("protocol error, terminating the connection: \(reason)")
        let copy = header.getSlice(at: header.readerIndex, length: min(header.readableBytes, TerminationRequest.maximumOffendingHeader)) ?? ByteBuffer()
        var buffer = ctx.channel.allocator.buffer(capacity: 24 + copy.readableBytes)
        NVMeTCPPDU.c2hTermReq(TerminationRequest(status: status, information: information, offendingHeader: copy)).encode(into: &buffer)
        phase = .closing
        writeOutput(ctx)  // completions already sent stay ahead of the termination request
        ctx.writeAndFlush(wrapOutboundOut(buffer)).assumeIsolated().whenComplete { _ in ctx.close(promise: nil) }
    }
}
