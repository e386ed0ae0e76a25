import Foundation
import NIOCore
import NIOPosix
import Storage
import Synchronization
import Testing

@Suite("FaultInjectingBlockDevice")
struct FaultInjectingBlockDeviceTests {
    private func withDevice(
        seed: UInt64 = 0,
        _ body: (FaultInjectingBlockDevice, any EventLoop) async throws -> Void
    ) async throws {
        try await IOEnvironment.with { environment in
            let device = FaultInjectingBlockDevice(
                wrapping: MemoryBlockDevice(blockSize: 512, blockCount: 8192),
                seed: seed
            )
            try await body(device, environment.loop)
        }
    }

    @Test("passes everything through when nothing is configured")
    func passThrough() async throws {
        let scenarios: [(any BlockDevice, any EventLoop) async throws -> Void] = [
            BlockDeviceScenarios.readAfterWrite,
            BlockDeviceScenarios.unwrittenReadsZero,
            BlockDeviceScenarios.rejectsOutOfRange,
            BlockDeviceScenarios.rejectsMisaligned,
            BlockDeviceScenarios.zeroingReadsZero,
        ]
        for scenario in scenarios {
            try await withDevice { device, loop in
                #expect(device.blockSize == 512)
                #expect(device.blockCount == 8192)
                #expect(device.hasVolatileWriteCache == false)
                try await scenario(device, loop)
                #expect(device.injectedFailureCount == 0)
                #expect(device.delayedOperationCount == 0)
            }
        }
    }

    @Test("latency on an LBA range delays only I/O there; another read completes first")
    func latencyOnlyInRange() async throws {
        try await withDevice { device, loop in
            try await device.write(lba: 0, data: TestPattern.buffer(blocks: 8, blockSize: 512, seed: 1), fua: false, on: loop).get()
            try await device.write(lba: 100, data: TestPattern.buffer(blocks: 8, blockSize: 512, seed: 2), fua: false, on: loop).get()
            device.addLatency(.milliseconds(20), to: .read)
            device.addLatency(.milliseconds(400), to: .read, lbas: 0..<8)

            let order = Mutex<[String]>([])
            let start = NIODeadline.now()
            let slow = device.read(lba: 4, blocks: 8, on: loop)  // overlaps 0..<8
            let fast = device.read(lba: 100, blocks: 8, on: loop)
            slow.whenComplete { _ in order.withLock { $0.append("slow") } }
            fast.whenComplete { _ in order.withLock { $0.append("fast") } }

            #expect(try await fast.get() == TestPattern.buffer(blocks: 8, blockSize: 512, seed: 2))
            let slowData = try await slow.get()
            let elapsed = NIODeadline.now() - start
            #expect(slowData.getSlice(at: 0, length: 4 * 512) == TestPattern.buffer(blocks: 8, blockSize: 512, seed: 1).getSlice(at: 4 * 512, length: 4 * 512))
            #expect(elapsed >= .milliseconds(400))
            #expect(order.withLock { $0 } == ["fast", "slow"])
            #expect(device.delayedOperationCount == 2)

            // Writes were not targeted, and removing the rules removes the delay.
            try await device.write(lba: 0, data: TestPattern.buffer(blocks: 1, blockSize: 512, seed: 3), fua: false, on: loop).get()
            #expect(device.delayedOperationCount == 2)
            device.removeAllLatency()
            _ = try await device.read(lba: 0, blocks: 1, on: loop).get()
            #expect(device.delayedOperationCount == 2)
        }
    }

    @Test("a delayed flush does not block the event loop")
    func latencyDoesNotBlockLoop() async throws {
        try await withDevice { device, loop in
            device.addLatency(.milliseconds(300), to: .flush)
            let done = Mutex(false)
            let start = NIODeadline.now()
            let flush = device.flush(on: loop)
            flush.whenComplete { _ in done.withLock { $0 = true } }
            // The loop keeps running other work while the flush waits.
            let flushDoneMeanwhile = try await loop.submit { done.withLock { $0 } }.get()
            #expect(flushDoneMeanwhile == false)
            try await flush.get()
            #expect(done.withLock { $0 })
            #expect(NIODeadline.now() - start >= .milliseconds(300))
        }
    }

    @Test("the next N calls fail with the injected error, then I/O recovers")
    func failNext() async throws {
        try await withDevice { device, loop in
            device.failNext(2, of: .read)
            await #expect(throws: BlockDeviceError.injected) { try await device.read(lba: 0, blocks: 1, on: loop).get() }
            // Invalid calls are rejected before the rules and use up nothing.
            await #expect(throws: BlockDeviceError.outOfRange) { try await device.read(lba: .max, blocks: 1, on: loop).get() }
            // Writes were not targeted.
            try await device.write(lba: 0, data: TestPattern.buffer(blocks: 1, blockSize: 512, seed: 3), fua: false, on: loop).get()
            await #expect(throws: BlockDeviceError.injected) { try await device.read(lba: 0, blocks: 1, on: loop).get() }
            #expect(try await device.read(lba: 0, blocks: 1, on: loop).get() == TestPattern.buffer(blocks: 1, blockSize: 512, seed: 3))
            #expect(device.injectedFailureCount == 2)
        }
    }

    @Test("a given error fails writes and flushes, and failed writes never land")
    func customError() async throws {
        try await withDevice { device, loop in
            device.injectFailure(BlockDeviceError.ioError(errno: EIO), into: [.write, .flush], trigger: .always)
            let data = TestPattern.buffer(blocks: 2, blockSize: 512, seed: 4)
            await #expect(throws: BlockDeviceError.ioError(errno: EIO)) { try await device.write(lba: 10, data: data, fua: true, on: loop).get() }
            await #expect(throws: BlockDeviceError.ioError(errno: EIO)) { try await device.flush(on: loop).get() }
            #expect(TestPattern.isZero(try await device.read(lba: 10, blocks: 2, on: loop).get()))

            device.removeAllFailures()
            try await device.write(lba: 10, data: data, fua: true, on: loop).get()
            try await device.flush(on: loop).get()
            #expect(try await device.read(lba: 10, blocks: 2, on: loop).get() == data)
        }
    }

    @Test("failures can target an LBA range and be delayed")
    func failureInRangeWithLatency() async throws {
        try await withDevice { device, loop in
            device.injectFailure(into: .read, lbas: 50..<60, trigger: .always)
            device.addLatency(.milliseconds(50), to: .read, lbas: 50..<60)
            _ = try await device.read(lba: 40, blocks: 10, on: loop).get()
            let start = NIODeadline.now()
            await #expect(throws: BlockDeviceError.injected) { try await device.read(lba: 45, blocks: 10, on: loop).get() }
            #expect(NIODeadline.now() - start >= .milliseconds(50))
            device.reset()
            _ = try await device.read(lba: 45, blocks: 10, on: loop).get()
        }
    }

    @Test("probabilistic failures are reproducible from the seed")
    func probability() async throws {
        func outcomes(seed: UInt64, probability: Double) async throws -> [Bool] {
            var results: [Bool] = []
            try await withDevice(seed: seed) { device, loop in
                device.injectFailure(trigger: .probability(probability))
                for _ in 0..<200 {
                    do {
                        _ = try await device.read(lba: 0, blocks: 1, on: loop).get()
                        results.append(true)
                    } catch BlockDeviceError.injected {
                        results.append(false)
                    }
                }
            }
            return results
        }
        let first = try await outcomes(seed: 42, probability: 0.5)
        let second = try await outcomes(seed: 42, probability: 0.5)
        #expect(first == second)
        let failures = first.filter { !$0 }.count
        #expect((50...150).contains(failures))
        #expect(try await outcomes(seed: 7, probability: 0).allSatisfy { $0 })
        #expect(try await outcomes(seed: 7, probability: 1).allSatisfy { !$0 })
    }

    @Test("closing closes the wrapped device")
    func close() async throws {
        try await withDevice { device, loop in
            try await BlockDeviceScenarios.rejectsAfterClose(device, on: loop)
            await #expect(throws: BlockDeviceError.closed) { try await device.wrapped.read(lba: 0, blocks: 1, on: loop).get() }
        }
    }

    @Test("SplitMix64 is deterministic")
    func generator() {
        var a = SplitMix64(seed: 1)
        var b = SplitMix64(seed: 1)
        var c = SplitMix64(seed: 2)
        let first = (0..<8).map { _ in a.next() }
        #expect(first == (0..<8).map { _ in b.next() })
        #expect(first != (0..<8).map { _ in c.next() })
    }
}

@Suite("FaultInjectingBlockDevice allocation reporting")
struct FaultInjectingAllocationTests {
    /// A RAM device that claims a fixed allocation map.
    final class ReportingDevice: BlockDevice, AllocationReporting {
        let memory = MemoryBlockDevice(blockSize: 512, blockCount: 128)
        var blockSize: Int { memory.blockSize }
        var blockCount: UInt64 { memory.blockCount }
        var hasVolatileWriteCache: Bool { false }
        func read(lba: UInt64, blocks: UInt32, on eventLoop: any EventLoop) -> EventLoopFuture<ByteBuffer> {
            memory.read(lba: lba, blocks: blocks, on: eventLoop)
        }
        func write(lba: UInt64, data: ByteBuffer, fua: Bool, on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
            memory.write(lba: lba, data: data, fua: fua, on: eventLoop)
        }
        func flush(on eventLoop: any EventLoop) -> EventLoopFuture<Void> { memory.flush(on: eventLoop) }
        func writeZeroes(lba: UInt64, blocks: UInt64, deallocate: Bool, fua: Bool, on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
            memory.writeZeroes(lba: lba, blocks: blocks, deallocate: deallocate, fua: fua, on: eventLoop)
        }
        func deallocate(lba: UInt64, blocks: UInt64, on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
            memory.deallocate(lba: lba, blocks: blocks, on: eventLoop)
        }
        func close() throws { try memory.close() }
        func allocatedBlockRanges() throws -> [Range<UInt64>] { [0..<8, 64..<72] }
    }

    @Test("forwards the wrapped device's allocation map; a device that cannot tell makes it nil")
    func forwardsAllocatedRanges() throws {
        let reporting = FaultInjectingBlockDevice(wrapping: ReportingDevice())
        reporting.addLatency(.milliseconds(1))
        #expect(try reporting.reportedAllocatedBlockRanges() == [0..<8, 64..<72])
        let plain = FaultInjectingBlockDevice(wrapping: MemoryBlockDevice(blockSize: 512, blockCount: 128))
        #expect(try plain.reportedAllocatedBlockRanges() == nil)
    }
}
