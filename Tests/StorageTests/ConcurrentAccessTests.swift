import NIOCore
import NIOPosix
import Storage
import Testing

@Suite("Concurrent access")
struct ConcurrentAccessTests {
    enum Backend: String, CaseIterable, Sendable {
        case memory
        case file
    }

    @Test("writes from two event loops to disjoint ranges all land", arguments: Backend.allCases)
    func twoLoops(backend: Backend) async throws {
        try await IOEnvironment.with(loops: 2) { environment in
            let blockSize = 4096
            let device: any BlockDevice
            switch backend {
            case .memory:
                device = MemoryBlockDevice(blockSize: blockSize, blockCount: 2048)
            case .file:
                device = try FileBlockDevice.open(
                    path: environment.directory.file("shared.img"),
                    size: 2048 * 4096,
                    blockSize: blockSize,
                    threadPool: environment.threadPool
                )
            }
            defer { try? device.close() }
            let loops = environment.loops
            try #require(loops.count == 2)

            // Loop i writes 4-block extents 2k+i, interleaved so both hit the same 1 MiB chunks.
            let extents = 256
            var futures: [EventLoopFuture<Void>] = []
            for (index, loop) in loops.enumerated() {
                let writes = loop.flatSubmit {
                    var writes: [EventLoopFuture<Void>] = []
                    for extent in stride(from: index, to: extents, by: 2) {
                        let data = TestPattern.buffer(blocks: 4, blockSize: blockSize, seed: UInt8(truncatingIfNeeded: extent))
                        writes.append(device.write(lba: UInt64(extent * 4), data: data, fua: false, on: loop))
                    }
                    return EventLoopFuture.andAllSucceed(writes, on: loop)
                }
                futures.append(writes)
            }
            for future in futures {
                try await future.get()
            }

            let loop = loops[0]
            for extent in 0..<extents {
                let read = try await device.read(lba: UInt64(extent * 4), blocks: 4, on: loop).get()
                #expect(read == TestPattern.buffer(blocks: 4, blockSize: blockSize, seed: UInt8(truncatingIfNeeded: extent)))
            }
            #expect(TestPattern.isZero(try await device.read(lba: UInt64(extents * 4), blocks: 8, on: loop).get()))
        }
    }
}
