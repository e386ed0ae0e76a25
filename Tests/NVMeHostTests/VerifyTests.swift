import NIOCore
import NIOPosix
import NVMe
import NVMeHost
import NVMeTarget
import Storage
import Synchronization
import Testing

extension FailoverTests {
    @Test("verify passes across a path failure (two paths, one cut mid-run and restored)")
    func verifyAcrossPathFailure() async throws {
        let t = try await RestartableTarget.start(listeners: 2)
        let proxy = TCPProxy(upstream: t.addresses[1], group: t.group)
        try await withCleanup({ await proxy.stop(); await t.shutdown() }) {
            try await proxy.start()
            let device = try await Self.connectDevice([t.addresses[0], proxy.address], group: t.group)
            // An earlier run (another seed) leaves its blocks behind; they count as never written.
            let earlier = try await Verify.run(device, options: VerifyOptions(seed: 1, size: 4 << 20, duration: .seconds(1)))
            #expect(earlier.passed && earlier.writesAcknowledged > 0, "\(earlier)")
            var options = VerifyOptions(seed: 0xC0FFEE, size: 4 << 20, duration: .seconds(4), queueDepth: 16, blocksPerWrite: 8)
            options.progressInterval = .milliseconds(250)
            let progressCalls = Counter()
            let chaos = Task {
                try await Task.sleep(for: .milliseconds(1200))
                await proxy.stop()
                try await Task.sleep(for: .milliseconds(1300))
                try await proxy.start()
            }
            let report = try await Verify.run(device, options: options) { _ in progressCalls.increment() }
            try await chaos.value
            #expect(report.passed, "\(report)")
            #expect(report.writesFailed == 0, "multipath hides the path failure: \(report)")
            #expect(report.writesAcknowledged == report.writesIssued)
            #expect(report.writesAcknowledged > 100)
            #expect(report.count(.ok) > 0)
            #expect(report.count(.ok) + report.count(.neverWritten) + report.count(.okInFlight) == Int(report.blockCount))
            #expect(report.problems.isEmpty)
            #expect(progressCalls.value >= 2)
            // The cut path was reconnected and carried I/O.
            #expect(await MP.eventually { device.paths[1].state == .live })
            await device.close()
        }
    }

    @Test("verify detects one silently dropped acknowledged write and names its LBA")
    func verifyDetectsDroppedWrite() async throws {
        // Sequential pattern, 64 one-block units, 2 full passes + 10: LBA 40's last write is
        // generation 2, the one the device drops while acknowledging it.
        let dropping = DroppingBlockDevice(wrapping: MemoryBlockDevice(blockSize: 512, blockCount: 1 << 12), lba: 40, generation: 2)
        let t = try await RestartableTarget.start(device: dropping)
        try await withCleanup({ await t.shutdown() }) {
            let device = try await Self.connectDevice(t.addresses, group: t.group)
            var options = VerifyOptions(seed: 7, size: 64 * 512, duration: .seconds(60), queueDepth: 4, blocksPerWrite: 1)
            options.pattern = .sequential
            options.maxWrites = 64 * 2 + 10
            let report = try await Verify.run(device, options: options)
            #expect(dropping.dropped == 1)
            #expect(!report.passed)
            #expect(report.writesAcknowledged == 138 && report.writesFailed == 0)
            #expect(report.count(.lost) == 1)
            #expect(report.count(.corrupt) == 0)
            #expect(report.count(.ok) == 63)
            let problem = try #require(report.problems.first)
            #expect(report.problems.count == 1)
            #expect(problem.lba == 40)
            #expect(problem.outcome == .lost)
            #expect(problem.expectedGeneration == 2 && problem.foundGeneration == 1)
            #expect(report.description.contains("LBA 40"))
            await device.close()
        }
    }

    @Test("verify detects a corrupted block")
    func verifyDetectsCorruption() async throws {
        let memory = MemoryBlockDevice(blockSize: 512, blockCount: 1 << 12)
        let t = try await RestartableTarget.start(device: memory)
        try await withCleanup({ await t.shutdown() }) {
            let device = try await Self.connectDevice(t.addresses, group: t.group)
            var options = VerifyOptions(seed: 11, size: 32 * 512, duration: .seconds(60), queueDepth: 4, blocksPerWrite: 1)
            options.pattern = .sequential
            options.maxWrites = 32
            // Run once, then flip a byte behind the host's back and verify the same ledger again
            // by classifying what is on the device now.
            let report = try await Verify.run(device, options: options)
            #expect(report.passed && report.count(.ok) == 32, "\(report)")
            let el = MultiThreadedEventLoopGroup.singleton.next()
            var block = try await memory.read(lba: 5, blocks: 1, on: el).get()
            block.setInteger(block.getInteger(at: 100, as: UInt8.self)! ^ 0x01, at: 100)
            try await memory.write(lba: 5, data: block, fua: false, on: el).get()
            let back = try await device.read(lba: 5, blocks: 1)
            let verdict = Verify.classify(back, lba: 5, seed: 11, acked: 1, uncertain: [])
            #expect(verdict.outcome == .corrupt && verdict.detail.contains("checksum"))
            await device.close()
        }
    }
}

/// A block device that silently drops ONE acknowledged write: the write of verify generation
/// `generation` to `lba` completes successfully but never reaches the wrapped device.
final class DroppingBlockDevice: BlockDevice {
    let inner: any BlockDevice
    let lba: UInt64
    let generation: UInt32
    private let count = Atomic<Int>(0)

    init(wrapping inner: any BlockDevice, lba: UInt64, generation: UInt32) {
        self.inner = inner
        self.lba = lba
        self.generation = generation
    }

    var dropped: Int { count.load(ordering: .relaxed) }
    var blockSize: Int { inner.blockSize }
    var blockCount: UInt64 { inner.blockCount }
    var hasVolatileWriteCache: Bool { inner.hasVolatileWriteCache }

    func read(lba: UInt64, blocks: UInt32, on eventLoop: any EventLoop) -> EventLoopFuture<ByteBuffer> {
        inner.read(lba: lba, blocks: blocks, on: eventLoop)
    }

    func write(lba: UInt64, data: ByteBuffer, fua: Bool, on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        let blocks = UInt64(data.readableBytes / blockSize)
        guard (lba..<(lba + blocks)).contains(self.lba), dropped == 0 else {
            return inner.write(lba: lba, data: data, fua: fua, on: eventLoop)
        }
        let offset = Int(self.lba - lba) * blockSize
        let block = data.getSlice(at: data.readerIndex + offset, length: blockSize)!
        guard case .stamp(_, self.lba, self.generation) = VerifyBlock.decode(block) else {
            return inner.write(lba: lba, data: data, fua: fua, on: eventLoop)
        }
        count.add(1, ordering: .relaxed)
        // Write everything but the dropped block, and acknowledge the whole write.
        var futures: [EventLoopFuture<Void>] = []
        if offset > 0 {
            futures.append(inner.write(lba: lba, data: data.getSlice(at: data.readerIndex, length: offset)!, fua: fua, on: eventLoop))
        }
        let after = offset + blockSize
        if after < data.readableBytes {
            futures.append(inner.write(lba: self.lba + 1, data: data.getSlice(at: data.readerIndex + after, length: data.readableBytes - after)!,
                                       fua: fua, on: eventLoop))
        }
        return EventLoopFuture.andAllSucceed(futures, on: eventLoop)
    }

    func flush(on eventLoop: any EventLoop) -> EventLoopFuture<Void> { inner.flush(on: eventLoop) }

    func writeZeroes(lba: UInt64, blocks: UInt64, deallocate: Bool, fua: Bool, on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        inner.writeZeroes(lba: lba, blocks: blocks, deallocate: deallocate, fua: fua, on: eventLoop)
    }

    func deallocate(lba: UInt64, blocks: UInt64, on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        inner.deallocate(lba: lba, blocks: blocks, on: eventLoop)
    }

    func close() throws { try inner.close() }
}
