import NIOCore
import NIOPosix
import NVMe
@testable import NVMeTarget
import Storage
import Testing
import Foundation

/// Reads and writes through the target: in-capsule, R2T/H2CData, C2HData, digests, concurrency.
@Suite("Target I/O path")
struct IOPathTests {
    @Test("write then read back: in-capsule, R2T in one and several H2CData PDUs, with and without digests",
          arguments: [(false, false), (true, true)])
    func readBack(headerDigest: Bool, dataDigest: Bool) async throws {
        try await withTarget(try await .start()) { t in
            let (admin, io, _) = try await t.connectIO(headerDigest: headerDigest, dataDigest: dataDigest)
            // 8 KiB in-capsule (≤ IOCCSZ×16−64), 64 KiB via one R2T, 1 MiB via R2T split into MAXH2CDATA chunks.
            for (lba, bytes, inCapsule) in [(UInt64(0), 8192, true), (100, 65536, false), (1000, 1 << 20, false)] {
                let data = pattern(bytes, seed: UInt8(truncatingIfNeeded: lba))
                let (w, _) = try await io.execute(.write(lba: lba, blocks: UInt32(bytes / 512)), data: data, inCapsule: inCapsule)
                #expect(w.status == .success, "write \(bytes) at \(lba)")
                #expect(w.submissionQueueID == 1)
                let (r, back) = try await io.execute(.read(lba: lba, blocks: UInt32(bytes / 512), blockSize: 512))
                #expect(r.status == .success)
                #expect(back == data, "read back \(bytes) bytes at LBA \(lba)")
            }
            // Flush, Write Zeroes, DSM deallocate.
            #expect(try await io.execute(SubmissionQueueEntry(opcode: IOOpcode.flush.rawValue, namespaceID: 1)).0.status == .success)
            let wz = SubmissionQueueEntry(opcode: IOOpcode.writeZeroes.rawValue, namespaceID: 1, cdw10: 100, cdw12: 7)
            #expect(try await io.execute(wz).0.status == .success)
            let (_, zeros) = try await io.execute(.read(lba: 100, blocks: 8, blockSize: 512))
            #expect(zeros.readableBytesView.allSatisfy { $0 == 0 })
            var range = ByteBuffer()
            range.writeInteger(UInt32(0), endianness: .little)
            range.writeInteger(UInt32(16), endianness: .little)
            range.writeInteger(UInt64(0), endianness: .little)
            let dsm = SubmissionQueueEntry(opcode: IOOpcode.datasetManagement.rawValue, namespaceID: 1, cdw10: 0, cdw11: 0x4)
            #expect(try await io.execute(dsm, data: range).0.status == .success)
            let (_, dealloc) = try await io.execute(.read(lba: 0, blocks: 16, blockSize: 512))
            #expect(dealloc.readableBytesView.allSatisfy { $0 == 0 })
            await io.close()
            await admin.close()
        }
    }

    @Test("SQ flow control disabled: a read completes with the C2HData SUCCESS flag and no CapsuleResp; writes, errors and a flow-controlled queue still get CapsuleResps",
          arguments: [false, true])
    func successFlag(digests: Bool) async throws {
        try await withTarget(try await .start()) { t in
            let (admin, io, _) = try await t.connectIO(headerDigest: digests, dataDigest: digests, disableSQFlowControl: true)
            let data = pattern(4096, seed: 9)
            let (w, _) = try await io.execute(.write(lba: 8, blocks: 8), data: data)
            #expect(w.status == .success)
            #expect(w.submissionQueueHead == 0xFFFF, "SQHD is 0xFFFF with flow control disabled")
            // A read and a 256 KiB read (two C2HData PDUs: SUCCESS only on the last).
            let (r, back) = try await io.execute(.read(lba: 8, blocks: 8, blockSize: 512))
            #expect(r.status == .success)
            #expect(back == data)
            let (big, bigData) = try await io.execute(.read(lba: 0, blocks: 512, blockSize: 512))
            #expect(big.status == .success && bigData.readableBytes == 512 * 512)
            #expect(io.completionsBySuccessFlag == 2)
            // The next PDU after those reads is this write's own CapsuleResp: no stray one for the reads.
            var sqe = SubmissionQueueEntry.write(lba: 16, blocks: 1)
            sqe.commandID = 0x0ABC
            try await io.submit(sqe, data: pattern(512, seed: 1))
            let (next, _) = try await io.nextCompletion()
            #expect(next.commandID == 0x0ABC)
            // An error completes with a CapsuleResp carrying the status.
            let (oob, _) = try await io.execute(.read(lba: 1 << 20, blocks: 1, blockSize: 512))
            #expect(oob.status == .lbaOutOfRange)
            #expect(io.completionsBySuccessFlag == 2)
            await io.close()
            await admin.close()

            // Flow control enabled (what the Linux host asks for by default): CapsuleResp always.
            let (admin2, io2, _) = try await t.connectIO(headerDigest: digests, dataDigest: digests)
            let (r2, back2) = try await io2.execute(.read(lba: 8, blocks: 8, blockSize: 512))
            #expect(r2.status == .success && back2 == data)
            #expect(r2.submissionQueueHead != 0xFFFF)
            #expect(io2.completionsBySuccessFlag == 0)
            await io2.close()
            await admin2.close()
        }
    }

    @Test("CID echoed verbatim, including generation bits")
    func cidEcho() async throws {
        try await withTarget(try await .start()) { t in
            let (admin, io, _) = try await t.connectIO()
            for cid: UInt16 in [0, 0x7FFF, 0xF00D, 0xFFFE] {
                var sqe = SubmissionQueueEntry.read(lba: 0, blocks: 1, blockSize: 512)
                sqe.commandID = cid
                try await io.submit(sqe)
                let (c, _) = try await io.nextCompletion()
                #expect(c.commandID == cid)
            }
            await io.close()
            await admin.close()
        }
    }

    @Test("bad I/O: LBA out of range, invalid opcode, invalid namespace, SGL length mismatch")
    func badIO() async throws {
        try await withTarget(try await .start()) { t in
            let (admin, io, _) = try await t.connectIO()
            #expect(try await io.execute(.read(lba: 131072, blocks: 1, blockSize: 512)).0.status == .lbaOutOfRange)
            #expect(try await io.execute(.read(lba: 131071, blocks: 2, blockSize: 512)).0.status == .lbaOutOfRange)
            #expect(try await io.execute(.read(lba: UInt64.max, blocks: 1, blockSize: 512)).0.status == .lbaOutOfRange)
            #expect(try await io.execute(.write(lba: 131072, blocks: 1), data: pattern(512, seed: 1)).0.status == .lbaOutOfRange)
            let unknown = try await io.execute(SubmissionQueueEntry(opcode: 0x7E, namespaceID: 1)).0.status
            #expect(unknown == .invalidOpcode && unknown.doNotRetry)
            #expect(try await io.execute(.read(nsid: 9, lba: 0, blocks: 1, blockSize: 512)).0.status == .invalidNamespace)
            var short = SubmissionQueueEntry.read(lba: 0, blocks: 8, blockSize: 512)
            short.dataPointer = .transport(length: 512)
            #expect(try await io.execute(short).0.status == .dataSGLLengthInvalid)
            #expect(try await admin.execute(SubmissionQueueEntry(opcode: 0x80)).0.status == .invalidOpcode)
            // The queue still works.
            #expect(try await io.execute(.read(lba: 0, blocks: 1, blockSize: 512)).0.status == .success)
            await io.close()
            await admin.close()
        }
    }

    @Test("one slow I/O does not hold up the others on the same queue")
    func slowIODoesNotBlock() async throws {
        let memory = MemoryBlockDevice(blockSize: 512, blockCount: 65536)
        let faulty = FaultInjectingBlockDevice(wrapping: memory)
        faulty.addLatency(.seconds(3), to: .read, lbas: 1000..<1001)
        try await withTarget(try await .start(devices: [faulty])) { t in
            let (admin, io, _) = try await t.connectIO()
            var slow = SubmissionQueueEntry.read(lba: 1000, blocks: 1, blockSize: 512)
            slow.commandID = 500
            try await io.submit(slow)
            for i in 0..<20 {
                var fast = SubmissionQueueEntry.read(lba: UInt64(i), blocks: 1, blockSize: 512)
                fast.commandID = UInt16(i)
                try await io.submit(fast)
            }
            var order: [UInt16] = []
            for _ in 0..<21 { order.append(try await io.nextCompletion().0.commandID) }
            #expect(order.last == 500, "the slow read completes last: \(order)")
            #expect(Set(order.prefix(20)) == Set(0..<20))
            await io.close()
            await admin.close()
        }
    }

    @Test("backend errors surface as NVMe errors and other commands are unaffected")
    func backendErrors() async throws {
        let faulty = FaultInjectingBlockDevice(wrapping: MemoryBlockDevice(blockSize: 512, blockCount: 65536))
        try await withTarget(try await .start(devices: [faulty])) { t in
            let (admin, io, _) = try await t.connectIO()
            faulty.failNext(1, of: .write)
            #expect(try await io.execute(.write(lba: 0, blocks: 1), data: pattern(512, seed: 3)).0.status == .internalError)
            #expect(try await io.execute(.write(lba: 0, blocks: 1), data: pattern(512, seed: 3)).0.status == .success)
            await io.close()
            await admin.close()
        }
    }

    @Test("queue depth 128 in flight on each of several queues")
    func deepQueues() async throws {
        try await withTarget(try await .start()) { t in
            let (admin, io1, cntlid) = try await t.connectIO(queueSize: 128)
            let io2 = try await TestQueue.open(port: t.ports[0], group: t.group)
            _ = try await io2.handshake()
            #expect(try await io2.connect(queueID: 2, subsystemNQN: TargetFixture.nqn, controllerID: cntlid, queueSize: 128).status == .success)
            for q in [io1, io2] {
                for i in 0..<128 {
                    var w = SubmissionQueueEntry.write(lba: UInt64(i * 8), blocks: 8)
                    w.commandID = UInt16(i)
                    try await q.submit(w, data: pattern(4096, seed: UInt8(i)), inCapsule: true)
                }
            }
            for q in [io1, io2] {
                var done = Set<UInt16>()
                for _ in 0..<128 {
                    let (c, _) = try await q.nextCompletion()
                    #expect(c.status == .success)
                    done.insert(c.commandID)
                }
                #expect(done.count == 128)
            }
            await io1.close(); await io2.close(); await admin.close()
        }
    }

    @Test("file-backed namespace: FUA/flush durable, data survives a target restart on the same port")
    func fileSurvivesRestart() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("halyard-test-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("ns.img").path
        let pool = NIOThreadPool(numberOfThreads: 2)
        pool.start()
        let data = pattern(65536, seed: 42)
        let device1 = try FileBlockDevice.open(path: path, size: 16 << 20, blockSize: 4096, threadPool: pool)
        let port = try await withTarget(try await .start(devices: [device1])) { t in
            let (admin, io, _) = try await t.connectIO()
            var b = ByteBuffer()
            let (idc, idd) = try await admin.execute(.identify(.controller))
            b = idd
            let vwc = try IdentifyController(decoding: &b).vwc
            #expect(idc.status == .success && vwc & 1 == 1)
            #expect(try await io.execute(.write(lba: 3, blocks: 16, fua: true), data: data, inCapsule: false).0.status == .success)
            #expect(try await io.execute(SubmissionQueueEntry(opcode: IOOpcode.flush.rawValue, namespaceID: 1)).0.status == .success)
            await io.close(); await admin.close()
            return t.ports[0]
        }
        try device1.close()
        let device2 = try FileBlockDevice.open(path: path, size: 16 << 20, blockSize: 4096, threadPool: pool)
        try await withTarget(try await .start(devices: [device2], fixedPorts: [port])) { t in
            #expect(t.ports[0] == port, "SO_REUSEADDR lets the restarted target bind its port at once")
            let (admin, io, _) = try await t.connectIO()
            let (r, back) = try await io.execute(.read(lba: 3, blocks: 16, blockSize: 4096))
            #expect(r.status == .success && back == data)
            await io.close(); await admin.close()
        }
        try device2.close()
        try await pool.shutdownGracefully()
    }
}
