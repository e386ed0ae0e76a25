import NIOCore
import Synchronization

/// A RAM-backed ``BlockDevice``. Storage is allocated lazily in chunks (256 KiB, or the whole
/// device if smaller), so a large namespace costs nothing until written; unwritten blocks
/// read as zeroes. Every call completes inline with an already-completed future on the
/// caller's event loop. Thread-safe: any number of event loops may call it concurrently.
/// Data is not persistent, and there is no volatile cache (flush is a no-op).
///
/// Chunks are `ByteBuffer`s, so a read inside one chunk returns a slice of it without copying
/// (and a read of never-written blocks a slice of a shared zero buffer); a write to a chunk
/// that an in-flight read still holds copies the chunk first (copy-on-write), so data already
/// read never changes under its reader.
public final class MemoryBlockDevice: BlockDevice {
    /// The largest chunk of backing memory allocated at once. I/Os aligned to their size up to
    /// this size never straddle chunks.
    public static let maximumChunkSize = 256 << 10

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
        eventLoop.makeCompletedFuture(readNow(lba: lba, blocks: blocks).mapError { $0 })
    }

    public func read(lba: UInt64, blocks: UInt32, on eventLoop: any EventLoop,
                     completion: @escaping (Result<ByteBuffer, any Error>) -> Void) {
        completion(readNow(lba: lba, blocks: blocks).mapError { $0 })
    }

    public func write(lba: UInt64, data: ByteBuffer, fua: Bool, on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        eventLoop.makeCompletedFuture(writeNow(lba: lba, data: data).mapError { $0 })
    }

    public func write(lba: UInt64, data: ByteBuffer, fua: Bool, on eventLoop: any EventLoop,
                      completion: @escaping (Result<Void, any Error>) -> Void) {
        completion(writeNow(lba: lba, data: data).mapError { $0 })
    }

    /// A slice of the chunk when the range lies in one chunk, else a copy; under the lock.
    private func readNow(lba: UInt64, blocks: UInt32) -> Result<ByteBuffer, BlockDeviceError> {
        let byteCount: Int
        do {
            byteCount = try geometryValue.checkRead(lba: lba, blocks: blocks)
        } catch {
            return .failure(error)
        }
        let offset = geometryValue.byteOffset(of: lba)
        let chunkSize = self.chunkSize
        let firstIndex = offset / UInt64(chunkSize)
        let firstWithin = Int(offset % UInt64(chunkSize))
        if firstWithin + byteCount <= chunkSize {
            let slice: ByteBuffer?? = state.withLock { state in
                guard !state.closed else { return nil }
                return .some(state.chunks[firstIndex]?.getSlice(at: firstWithin, length: byteCount))
            }
            switch slice {
            case .none: return .failure(.closed)
            case .some(.some(let data)): return .success(data)
            case .some(.none): return .success(Self.zeroes(byteCount))
            }
        }
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
                        chunk.withUnsafeReadableBytes { source in
                            target.copyMemory(from: UnsafeRawBufferPointer(rebasing: source[within..<(within + count)]))
                        }
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
            return .failure(failure)
        }
        return .success(buffer)
    }

    /// A shared all-zero buffer for reads of unwritten chunks.
    private static let zeroBuffer: ByteBuffer = {
        var buffer = ByteBufferAllocator().buffer(capacity: maximumChunkSize)
        buffer.writeRepeatingByte(0, count: maximumChunkSize)
        return buffer
    }()

    private static func zeroes(_ count: Int) -> ByteBuffer {
        if count <= maximumChunkSize { return zeroBuffer.getSlice(at: zeroBuffer.readerIndex, length: count)! }
        var buffer = ByteBufferAllocator().buffer(capacity: count)
        buffer.writeRepeatingByte(0, count: count)
        return buffer
    }

    /// Copies the blocks in under the lock.
    private func writeNow(lba: UInt64, data: ByteBuffer) -> Result<Void, BlockDeviceError> {
        let byteCount = data.readableBytes
        do {
            _ = try geometryValue.checkWrite(lba: lba, byteCount: byteCount)
        } catch {
            return .failure(error)
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
                    // Modified in place through the dictionary (copied first only if a read holds it).
                    state.chunks[index, default: State.newChunk(size: chunkSize)].setBytes(
                        UnsafeRawBufferPointer(rebasing: source[done..<(done + count)]), at: within)
                    done += count
                }
            }
            return nil
        }
        if let failure {
            return .failure(failure)
        }
        return .success(())
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
        var chunks: [UInt64: ByteBuffer] = [:]
        var closed = false

        /// A zero-filled chunk.
        static func newChunk(size: Int) -> ByteBuffer {
            var buffer = ByteBufferAllocator().buffer(capacity: size)
            buffer.writeRepeatingByte(0, count: size)
            return buffer
        }

        /// Zeroes the part of chunk `index` that lies in the byte range `start..<end`,
        /// freeing the chunk when the range covers all of it.
        mutating func zero(chunk index: UInt64, chunkSize: UInt64, start: UInt64, end: UInt64) {
            guard chunks[index] != nil else { return }
            let chunkStart = index * chunkSize
            let from = max(start, chunkStart) - chunkStart
            let to = min(end, chunkStart + chunkSize) - chunkStart
            if from == 0 && to == chunkSize {
                chunks[index] = nil
            } else {
                chunks[index]!.setRepeatingByte(0, count: Int(to - from), at: Int(from))
            }
        }
    }
}
