import NIOCore
import NVMe
@testable import NVMeTarget
import Storage
import Testing

/// Bad input at the transport and fabrics level: precise errors, only the offending connection
/// closed, other connections unaffected.
@Suite("Target protocol errors")
struct ProtocolErrorTests {
    @Test("unknown subsystem and disallowed host are answered with Connect errors (not a silent close)")
    func connectErrors() async throws {
        try await withTarget(try await .start(allowedHosts: ["nqn.2014-08.org.nvmexpress:uuid:allowed"])) { t in
            let q1 = try await TestQueue.open(port: t.ports[0], group: t.group)
            _ = try await q1.handshake()
            let c1 = try await q1.connect(queueID: 0, subsystemNQN: "nqn.2026-11.io.halyard:nope", hostNQN: "nqn.2014-08.org.nvmexpress:uuid:allowed")
            #expect(c1.status == .connectInvalidParameters && c1.status.doNotRetry && c1.dw0 == 0x0001_0100)
            await q1.close()

            let q2 = try await TestQueue.open(port: t.ports[0], group: t.group)
            _ = try await q2.handshake()
            let c2 = try await q2.connect(queueID: 0, subsystemNQN: TargetFixture.nqn, hostNQN: "nqn.2014-08.org.nvmexpress:uuid:intruder")
            #expect(c2.status == .connectInvalidHost && c2.status.wire == 0x8308 && c2.dw0 == 0x0001_0200)
            await q2.close()

            // I/O queue for a controller that does not exist; queue size 0.
            let q3 = try await TestQueue.open(port: t.ports[0], group: t.group)
            _ = try await q3.handshake()
            let c3 = try await q3.connect(queueID: 1, subsystemNQN: TargetFixture.nqn, hostNQN: "nqn.2014-08.org.nvmexpress:uuid:allowed", controllerID: 99)
            #expect(c3.status == .connectInvalidParameters)
            await q3.close()

            let (ok, _) = try await t.connectAdmin(hostNQN: "nqn.2014-08.org.nvmexpress:uuid:allowed")
            await ok.close()
        }
    }

    @Test("commands before Connect or before CC.EN get Command Sequence Error")
    func sequenceErrors() async throws {
        try await withTarget(try await .start()) { t in
            let q = try await TestQueue.open(port: t.ports[0], group: t.group)
            _ = try await q.handshake()
            #expect(try await q.execute(.identify(.controller)).0.status == .commandSequenceError)
            let c = try await q.connect(queueID: 0, subsystemNQN: TargetFixture.nqn, kato: 5000)
            #expect(c.status == .success)
            #expect(try await q.execute(.identify(.controller)).0.status == .commandSequenceError)
            await q.close()
        }
    }

    @Test("malformed PDUs get a C2HTermReq and close only that connection", arguments: [
        ("unknown PDU type", [0x08, 0, 24, 0, 24, 0, 0, 0] + [UInt8](repeating: 0, count: 16), FatalErrorStatus.invalidHeaderField, UInt32(0)),
        ("bad HLEN", [0x04, 0, 70, 0, 72, 0, 0, 0] + [UInt8](repeating: 0, count: 64), .invalidHeaderField, 2),
        ("huge PLEN", [0x04, 0, 72, 0, 0xFF, 0xFF, 0xFF, 0x7F] + [UInt8](repeating: 0, count: 64), .dataTransferOutOfRange, 4),
        ("C2HData from a host", [0x07, 0x04, 24, 24, 28, 0, 0, 0] + [UInt8](repeating: 0, count: 8) + [4, 0, 0, 0] + [UInt8](repeating: 0, count: 8), .invalidHeaderField, 0),
    ] as [(String, [UInt8], FatalErrorStatus, UInt32)])
    func malformed(name: String, bytes: [UInt8], status: FatalErrorStatus, fei: UInt32) async throws {
        try await withTarget(try await .start()) { t in
            let (bystanderAdmin, bystander, _) = try await t.connectIO()
            let q = try await TestQueue.open(port: t.ports[0], group: t.group)
            _ = try await q.handshake()
            try await q.sendRaw(ByteBuffer(bytes: bytes))
            let term = try await q.receive()
            guard case .c2hTermReq(let req)? = term?.pdu else {
                Issue.record("\(name): expected C2HTermReq, got \(String(describing: term?.pdu.type))")
                return
            }
            #expect(req.status == status.rawValue, "\(name)")
            #expect(req.information == fei, "\(name)")
            #expect(req.offendingHeader.readableBytes > 0)
            #expect(try await q.receive() == nil, "connection closed after the TermReq")
            // The other connection still serves I/O.
            #expect(try await bystander.execute(.read(lba: 0, blocks: 1, blockSize: 512)).0.status == .success)
            await q.close(); await bystander.close(); await bystanderAdmin.close()
        }
    }

    @Test("ICReq twice, or a command before ICReq, is a PDU sequence error")
    func outOfSequence() async throws {
        try await withTarget(try await .start()) { t in
            let q = try await TestQueue.open(port: t.ports[0], group: t.group)
            try await q.send(.capsuleCommand(CapsuleCommand(command: .identify(.controller))))
            guard case .c2hTermReq(let r)? = try await q.receive()?.pdu else { Issue.record("no TermReq"); return }
            #expect(r.status == FatalErrorStatus.pduSequenceError.rawValue)
            await q.close()
            let q2 = try await TestQueue.open(port: t.ports[0], group: t.group)
            _ = try await q2.handshake()
            try await q2.send(.icReq(ICReq()))
            guard case .c2hTermReq(let r2)? = try await q2.receive()?.pdu else { Issue.record("no TermReq"); return }
            #expect(r2.status == FatalErrorStatus.pduSequenceError.rawValue)
            await q2.close()
        }
    }

    @Test("a header digest error terminates with FES 3; a data digest error fails the command with Transient Transport Error")
    func digestErrors() async throws {
        try await withTarget(try await .start()) { t in
            let (admin, io, _) = try await t.connectIO(headerDigest: true, dataDigest: true)
            var w = SubmissionQueueEntry.write(lba: 0, blocks: 1)
            w.commandID = 77
            w.dataPointer = .inCapsule(length: 512)
            var bytes = ByteBuffer()
            NVMeTCPPDU.capsuleCommand(CapsuleCommand(command: w, data: pattern(512, seed: 9))).encode(into: &bytes, headerDigest: true, dataDigest: true)
            // Corrupt the last byte (the data digest).
            let last = bytes.writerIndex - 1
            bytes.setInteger(bytes.getInteger(at: last, as: UInt8.self)! ^ 0xFF, at: last)
            try await io.sendRaw(bytes)
            let (c, _) = try await io.nextCompletion()
            #expect(c.commandID == 77 && c.status == .transientTransportError)
            // Now corrupt a header digest.
            var h = ByteBuffer()
            NVMeTCPPDU.capsuleCommand(CapsuleCommand(command: .read(lba: 0, blocks: 1, blockSize: 512))).encode(into: &h, headerDigest: true, dataDigest: true)
            h.setInteger(h.getInteger(at: 72, as: UInt8.self)! ^ 1, at: 72)
            try await io.sendRaw(h)
            guard case .c2hTermReq(let r)? = try await io.receive()?.pdu else { Issue.record("no TermReq"); return }
            #expect(r.status == FatalErrorStatus.headerDigestError.rawValue)
            await io.close(); await admin.close()
        }
    }

    @Test("H2CData out of sequence terminates the connection")
    func badH2CData() async throws {
        try await withTarget(try await .start()) { t in
            let (admin, io, _) = try await t.connectIO()
            var w = SubmissionQueueEntry.write(lba: 0, blocks: 128)
            w.commandID = 5
            w.dataPointer = .transport(length: 65536)
            try await io.send(.capsuleCommand(CapsuleCommand(command: w)))
            guard case .r2t(let r2t)? = try await io.receive()?.pdu else { Issue.record("no R2T"); return }
            #expect(r2t.commandID == 5 && r2t.offset == 0 && r2t.length == 65536)
            // Data at the wrong offset.
            try await io.send(.h2cData(DataTransfer(commandID: 5, transferTag: r2t.transferTag, dataOffset: 4096, last: false, data: pattern(4096, seed: 1))))
            guard case .c2hTermReq(let r)? = try await io.receive()?.pdu else { Issue.record("no TermReq"); return }
            #expect(r.status == FatalErrorStatus.dataTransferOutOfRange.rawValue)
            await io.close(); await admin.close()
        }
    }
}
