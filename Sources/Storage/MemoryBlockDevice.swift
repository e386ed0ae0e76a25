import NIOCore
import Synchronization

/// A RAM-backed ``BlockDevice``. Storage is allocated lazily in chunks (1 MiB, or the whole
/// device if smaller), so a large namespace costs nothing until written; unwritten blocks
/// read as zeroes. Every call completes inline with an already-completed future on the
/// caller's event loop. Thread-safe: any number of event loops may call it concurrently.
/// Data is not persistent, and there is no volatile cache (flush is a no-op).
public final class MemoryBlockDevice: BlockDevice {
    /// The largest chunk of backing memory allocated at once.
    public static let maximumChunkSize = 1 << 20

    public let blockSize: Int
    public let blockCount: UInt64
    public var hasVolatileWriteCache: Bool { false }

    /// Bytes per backing chunk: a multiple of `blockSize`, so a block never straddles chunks.
    let chunkSize: Int
    private let geometryValue: BlockDeviceGeometry
    private let state: Mutex<State>

    /// Creates an empty (all-zero) device.
    /// - Precondition: `blockSize` is a power of two in 512...65536 and the capacity fits in `Int64`.
    public init(blockSize: Int, blockCount: UInt64) {
        guard let geometry = BlockDeviceGeometry(blockSize: blockSize, blockCount: blockCount) else {
            preconditionFailure("invalid memory block device geometry: \(blockCount) blocks of \(blockSize) bytes")
        }
        self.blockSize = blockSize
        self.blockCount = blockCount
        self.geometryValue = geometry
        self.chunkSize = Int(min(UInt64(Self.maximumChunkSize), max(geometry.byteCount, UInt64(blockSize))))
        self.state = Mutex(State())
    }

    /// Bytes of RAM currently backing written data.
    public var allocatedBytes: Int {
        state.withLock { $0.chunks.count * chunkSize }
    }

    public func read(lba: UInt64, blocks: UInt32, on eventLoop: any EventLoop) -> EventLoopFuture<ByteBuffer> {
        let byteCount: Int
        do {
            byteCount = try geometryValue.checkRead(lba: lba, blocks: blocks)
        } catch {
            return eventLoop.makeFailedFuture(error)
        }
        let offset = geometryValue.byteOffset(of: lba)
        let chunkSize = self.chunkSize
        var buffer = ByteBufferAllocator().buffer(capacity: byteCount)
        let failure: BlockDeviceError? = state.withLock { state in
            guard !state.closed else { return .closed }
            buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: byteCount) { destination in
                var done = 0
                while done < byteCount {
                    let position = offset + UInt64(done)
                    let index = position / UInt64(chunkSize)
                    let within = Int(position % UInt64(chunkSize))
                    let count = min(chunkSize - within, byteCount - done)
                    let target = UnsafeMutableRawBufferPointer(rebasing: destination[done..<(done + count)])
                    if let chunk = state.chunks[index] {
                        target.copyMemory(from: UnsafeRawBufferPointer(rebasing: chunk.bytes[within..<(within + count)]))
                    } else {
                        target.initializeMemory(as: UInt8.self, repeating: 0)
                    }
                    done += count
                }
                return byteCount
            }
            return nil
        }
        if let failure {
            return eventLoop.makeFailedFuture(failure)
        }
        return eventLoop.makeSucceededFuture(buffer)
    }

    public func write(lba: UInt64, data: ByteBuffer, fua: Bool, on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        let byteCount = data.readableBytes
        do {
            _ = try geometryValue.checkWrite(lba: lba, byteCount: byteCount)
        } catch {
            return eventLoop.makeFailedFuture(error)
        }
        let offset = geometryValue.byteOffset(of: lba)
        let chunkSize = self.chunkSize
        let failure: BlockDeviceError? = state.withLock { state in
            guard !state.closed else { return .closed }
            data.withUnsafeReadableBytes { source in
                var done = 0
                while done < byteCount {
                    let position = offset + UInt64(done)
                    let index = position / UInt64(chunkSize)
                    let within = Int(position % UInt64(chunkSize))
                    let count = min(chunkSize - within, byteCount - done)
                    let chunk: Chunk
                    if let existing = state.chunks[index] {
                        chunk = existing
                    } else {
                        chunk = Chunk(size: chunkSize)
                        state.chunks[index] = chunk
                    }
                    UnsafeMutableRawBufferPointer(rebasing: chunk.bytes[within..<(within + count)])
                        .copyMemory(from: UnsafeRawBufferPointer(rebasing: source[done..<(done + count)]))
                    done += count
                }
            }
            return nil
        }
        if let failure {
            return eventLoop.makeFailedFuture(failure)
        }
        return eventLoop.makeSucceededVoidFuture()
    }

    public func flush(on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        if state.withLock({ $0.closed }) {
            return eventLoop.makeFailedFuture(BlockDeviceError.closed)
        }
        return eventLoop.makeSucceededVoidFuture()
    }

    public func writeZeroes(
        lba: UInt64,
        blocks: UInt64,
        deallocate: Bool,
        fua: Bool,
        on eventLoop: any EventLoop
    ) -> EventLoopFuture<Void> {
        // Zeroed memory and freed memory read the same, so both always free what they can.
        self.deallocate(lba: lba, blocks: blocks, on: eventLoop)
    }

    public func deallocate(lba: UInt64, blocks: UInt64, on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        do {
            try geometryValue.checkRange(lba: lba, blocks: blocks)
        } catch {
            return eventLoop.makeFailedFuture(error)
        }
        let start = geometryValue.byteOffset(of: lba)
        let end = geometryValue.byteOffset(of: lba + blocks)
        let chunkSize = UInt64(self.chunkSize)
        let failure: BlockDeviceError? = state.withLock { state in
            guard !state.closed else { return .closed }
            guard start < end else { return nil }
            let firstChunk = start / chunkSize
            let lastChunk = (end - 1) / chunkSize
            // Visit whichever is smaller: the chunks in the range, or the chunks that exist.
            if lastChunk - firstChunk >= UInt64(state.chunks.count) {
                for index in Array(state.chunks.keys) where index >= firstChunk && index <= lastChunk {
                    state.zero(chunk: index, chunkSize: chunkSize, start: start, end: end)
                }
            } else {
                for index in firstChunk...lastChunk {
                    state.zero(chunk: index, chunkSize: chunkSize, start: start, end: end)
                }
            }
            return nil
        }
        if let failure {
            return eventLoop.makeFailedFuture(failure)
        }
        return eventLoop.makeSucceededVoidFuture()
    }

    /// Frees all memory; every later call fails with ``BlockDeviceError/closed``. Idempotent.
    public func close() throws {
        state.withLock { state in
            state.closed = true
            state.chunks.removeAll()
        }
    }
}

extension MemoryBlockDevice {
    /// The mutable part of the device, guarded by the mutex.
    private struct State {
        var chunks: [UInt64: Chunk] = [:]
        var closed = false

        /// Zeroes the part of chunk `index` that lies in the byte range `start..<end`,
        /// freeing the chunk when the range covers all of it.
        mutating func zero(chunk index: UInt64, chunkSize: UInt64, start: UInt64, end: UInt64) {
            guard let chunk = chunks[index] else { return }
            let chunkStart = index * chunkSize
            let from = max(start, chunkStart) - chunkStart
            let to = min(end, chunkStart + chunkSize) - chunkStart
            if from == 0 && to == chunkSize {
                chunks[index] = nil
            } else {
                UnsafeMutableRawBufferPointer(rebasing: chunk.bytes[Int(from)..<Int(to)])
                    .initializeMemory(as: UInt8.self, repeating: 0)
            }
        }
    }

    /// One zero-initialised chunk of backing memory; only touched with the mutex held.
    private final class Chunk {
        let bytes: UnsafeMutableRawBufferPointer

        init(size: Int) {
            bytes = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 16)
            bytes.initializeMemory(as: UInt8.self, repeating: 0)
        }

        deinit {
            bytes.deallocate()
        }
    }
}
