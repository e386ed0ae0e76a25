import NIOCore
import NIOPosix
import NVMe
import Testing

/// A minimal NVMe/TCP host for the target's tests: one TCP connection (one queue), PDUs in and
/// out, and helpers for the connect sequence and for commands with data. Deliberately plain — the
/// project's full initiator is NVMeHost; this one exists so the target's tests stand alone.
final class TestQueue {
    let channel: NIOAsyncChannel<DecodedPDU, ByteBuffer>
    var inbound: NIOAsyncChannelInboundStream<DecodedPDU>.AsyncIterator
    let outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>
    var headerDigest = false
    var dataDigest = false
    var maxH2CData = 0
    var nextCID: UInt16 = 1

    static let hostID: [UInt8] = Array(0x10...0x1F)
    static let hostNQN = "nqn.2014-08.org.nvmexpress:uuid:00000000-1111-2222-3333-444444444444"

    private init(channel: NIOAsyncChannel<DecodedPDU, ByteBuffer>) throws {
        self.channel = channel
        var inbound: NIOAsyncChannelInboundStream<DecodedPDU>.AsyncIterator?
        var outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>?
        // Split the channel into its halves without a closure scope: tests drive it step by step.
        inbound = channel.inbound.makeAsyncIterator()
        outbound = channel.outbound
        self.inbound = inbound!
        self.outbound = outbound!
    }

    static func open(port: Int, group: any EventLoopGroup) async throws -> TestQueue {
        let channel = try await ClientBootstrap(group: group)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(NVMeTCPPDUDecoder(maximumLength: 4 << 20)))
                    return try NIOAsyncChannel<DecodedPDU, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        return try TestQueue(channel: channel)
    }

    deinit { outbound.finish() }

    func close() async {
        outbound.finish()
        try? await channel.channel.close()
    }

    func sendRaw(_ bytes: ByteBuffer) async throws {
        try await outbound.write(bytes)
    }

    func send(_ pdu: NVMeTCPPDU) async throws {
        var buffer = ByteBuffer()
        pdu.encode(into: &buffer, headerDigest: headerDigest, dataDigest: dataDigest)
        try await outbound.write(buffer)
    }

    /// The next PDU, or nil when the target closed the connection.
    func receive() async throws -> DecodedPDU? {
        try await inbound.next()
    }

    func handshake(headerDigest: Bool = false, dataDigest: Bool = false) async throws -> ICResp {
        try await send(.icReq(ICReq(headerDigest: headerDigest, dataDigest: dataDigest)))
        guard case .icResp(let resp)? = try await receive()?.pdu else { throw TestFailure("no ICResp") }
        self.headerDigest = headerDigest
        self.dataDigest = dataDigest
        maxH2CData = Int(resp.maxH2CData)
        return resp
    }

    func allocateCID() -> UInt16 {
        defer { nextCID = nextCID == 0xFFFE ? 1 : nextCID + 1 }
        return nextCID
    }

    /// Sends a command; data for a write goes in-capsule when `inCapsule`, else after the R2T.
    func submit(_ sqe: SubmissionQueueEntry, data: ByteBuffer? = nil, inCapsule: Bool = true) async throws {
        var sqe = sqe
        if let data, data.readableBytes > 0 {
            sqe.dataPointer = inCapsule ? .inCapsule(length: UInt32(data.readableBytes)) : .transport(length: UInt32(data.readableBytes))
            pendingWrites[sqe.commandID] = data
            try await send(.capsuleCommand(CapsuleCommand(command: sqe, data: inCapsule ? data : ByteBuffer())))
        } else {
            try await send(.capsuleCommand(CapsuleCommand(command: sqe)))
        }
    }

    var pendingWrites: [UInt16: ByteBuffer] = [:]
    var readData: [UInt16: ByteBuffer] = [:]
    /// Completions that came as a C2HData SUCCESS flag instead of a CapsuleResp.
    var completionsBySuccessFlag = 0

    /// Reads PDUs until a completion arrives: answers R2Ts, collects C2HData.
    func nextCompletion() async throws -> (CompletionQueueEntry, ByteBuffer) {
        while true {
            guard let decoded = try await receive() else { throw TestFailure("connection closed by target") }
            switch decoded.pdu {
            case .capsuleResponse(let r):
                let cid = r.completion.commandID
                pendingWrites[cid] = nil
                return (r.completion, readData.removeValue(forKey: cid) ?? ByteBuffer())
            case .c2hData(let d):
                #expect(decoded.dataDigest == dataDigest)
                #expect(decoded.dataDigestValid)
                var have = readData[d.commandID] ?? ByteBuffer()
                #expect(Int(d.dataOffset) == have.readableBytes, "C2HData in order")
                var chunk = d.data
                have.writeBuffer(&chunk)
                readData[d.commandID] = have
                if d.success {
                    // NVMe/TCP 1.0 §3.6.2.7: the command completed successfully, no CapsuleResp follows.
                    completionsBySuccessFlag += 1
                    readData[d.commandID] = nil
                    return (CompletionQueueEntry(submissionQueueHead: 0xFFFF, commandID: d.commandID), have)
                }
            case .r2t(let r):
                guard let data = pendingWrites[r.commandID] else { throw TestFailure("R2T for unknown CID \(r.commandID)") }
                var offset = Int(r.offset)
                let end = offset + Int(r.length)
                while offset < end {
                    let n = min(maxH2CData, end - offset)
                    let chunk = data.getSlice(at: data.readerIndex + offset, length: n)!
                    try await send(.h2cData(DataTransfer(commandID: r.commandID, transferTag: r.transferTag, dataOffset: UInt32(offset),
                                                         last: offset + n == end, data: chunk)))
                    offset += n
                }
            case .c2hTermReq(let t):
                throw TestFailure("target terminated: FES \(t.status) FEI \(t.information)")
            default:
                throw TestFailure("unexpected \(decoded.pdu.type)")
            }
        }
    }

    /// Submits and waits for the completion.
    func execute(_ sqe: SubmissionQueueEntry, data: ByteBuffer? = nil, inCapsule: Bool = true) async throws -> (CompletionQueueEntry, ByteBuffer) {
        var sqe = sqe
        sqe.commandID = allocateCID()
        try await submit(sqe, data: data, inCapsule: inCapsule)
        return try await nextCompletion()
    }

    func connect(queueID: UInt16, subsystemNQN: String, hostNQN: String = TestQueue.hostNQN, hostID: [UInt8] = TestQueue.hostID,
                 controllerID: UInt16 = 0xFFFF, queueSize: UInt16 = 32, kato: UInt32 = 0,
                 attributes: UInt8 = 0) async throws -> CompletionQueueEntry {
        let command = ConnectCommand(queueID: queueID, submissionQueueSize: queueSize - 1, attributes: attributes,
                                     keepAliveTimeoutMilliseconds: kato)
        var data = ByteBuffer()
        ConnectData(hostID: hostID, controllerID: controllerID, subsystemNQN: subsystemNQN, hostNQN: hostNQN).encode(into: &data)
        return try await execute(command.submissionQueueEntry(commandID: 0), data: data).0
    }

    func getProperty(_ offset: UInt32, eightBytes: Bool = false) async throws -> UInt64 {
        let (cqe, _) = try await execute(PropertyCommand(isEightBytes: eightBytes, offset: offset).submissionQueueEntry(set: false, commandID: 0))
        try #require(cqe.status.isSuccess, "property get \(offset): \(cqe.status)")
        return UInt64(cqe.dw0) | UInt64(cqe.dw1) << 32
    }

    func setProperty(_ offset: UInt32, _ value: UInt64) async throws -> NVMeStatus {
        try await execute(PropertyCommand(isEightBytes: false, offset: offset, value: value).submissionQueueEntry(set: true, commandID: 0)).0.status
    }

    /// Admin queue bring-up as Linux does it: ICReq, Connect, CC.EN=1, wait RDY. Returns the cntlid.
    func bringUpAdmin(subsystemNQN: String, hostNQN: String = TestQueue.hostNQN, kato: UInt32 = 5000,
                      headerDigest: Bool = false, dataDigest: Bool = false) async throws -> UInt16 {
        _ = try await handshake(headerDigest: headerDigest, dataDigest: dataDigest)
        let cqe = try await connect(queueID: 0, subsystemNQN: subsystemNQN, hostNQN: hostNQN, kato: kato)
        try #require(cqe.status.isSuccess, "connect: \(cqe.status)")
        #expect(try await setProperty(ControllerProperty.configuration, UInt64(ControllerConfiguration.linuxDefault(enable: false).rawValue)) == .success)
        #expect(try await setProperty(ControllerProperty.configuration, UInt64(ControllerConfiguration.linuxDefault(enable: true).rawValue)) == .success)
        let csts = ControllerStatus(rawValue: UInt32(try await getProperty(ControllerProperty.status)))
        try #require(csts.ready)
        return UInt16(truncatingIfNeeded: cqe.dw0)
    }
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

extension SubmissionQueueEntry {
    static func read(nsid: UInt32 = 1, lba: UInt64, blocks: UInt32, blockSize: Int) -> SubmissionQueueEntry {
        SubmissionQueueEntry(opcode: IOOpcode.read.rawValue, namespaceID: nsid,
                             dataPointer: .transport(length: blocks * UInt32(blockSize)),
                             cdw10: UInt32(truncatingIfNeeded: lba), cdw11: UInt32(truncatingIfNeeded: lba >> 32), cdw12: blocks - 1)
    }

    static func write(nsid: UInt32 = 1, lba: UInt64, blocks: UInt32, fua: Bool = false) -> SubmissionQueueEntry {
        SubmissionQueueEntry(opcode: IOOpcode.write.rawValue, namespaceID: nsid,
                             cdw10: UInt32(truncatingIfNeeded: lba), cdw11: UInt32(truncatingIfNeeded: lba >> 32),
                             cdw12: (blocks - 1) | (fua ? 1 << 30 : 0))
    }

    static func identify(_ cns: IdentifyCNS, nsid: UInt32 = 0) -> SubmissionQueueEntry {
        SubmissionQueueEntry(opcode: AdminOpcode.identify.rawValue, namespaceID: nsid, dataPointer: .transport(length: 4096),
                             cdw10: UInt32(cns.rawValue))
    }

    static func getLogPage(_ lid: UInt8, length: Int, offset: UInt64 = 0, nsid: UInt32 = 0xFFFF_FFFF) -> SubmissionQueueEntry {
        let f = GetLogPageCommandFields(logPageIdentifier: lid, lengthInBytes: length, offset: offset)
        return SubmissionQueueEntry(opcode: AdminOpcode.getLogPage.rawValue, namespaceID: nsid, dataPointer: .transport(length: UInt32(length)),
                                    cdw10: f.cdw10, cdw11: f.cdw11, cdw12: f.cdw12, cdw13: f.cdw13, cdw14: f.cdw14)
    }

    static func setFeature(_ fid: FeatureIdentifier, _ value: UInt32) -> SubmissionQueueEntry {
        SubmissionQueueEntry(opcode: AdminOpcode.setFeatures.rawValue, cdw10: UInt32(fid.rawValue), cdw11: value)
    }
}

func pattern(_ count: Int, seed: UInt8) -> ByteBuffer {
    var b = ByteBuffer()
    var x = UInt64(seed) &* 0x9E37_79B9_7F4A_7C15 | 1
    b.reserveCapacity(count + 8)
    for _ in 0..<(count + 7) / 8 {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17
        b.writeInteger(x)
    }
    b.moveWriterIndex(to: count)
    return b
}
