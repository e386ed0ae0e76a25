import NIOCore
import Storage
import Synchronization

/// A test double for a disk with a volatile write cache (in the manner of FoundationDB's
/// AsyncFileNonDurable): completed writes sit in an overlay until a flush (or a FUA write)
/// makes them durable in `durable`. ``crash(seed:)`` models power loss: each unflushed write,
/// in issue order, is dropped, applied whole, or torn (a seeded subset of its 512-byte sectors
/// applied); afterwards every call fails with ``BlockDeviceError/closed``. A new instance over
/// the same `durable` is the disk after the reboot.
///
/// Can also crash itself at its n-th write/flush/zero call (``crash(atOperation:seed:)``), so a
/// test stops the pool exactly mid-commit.
final class VolatileCacheBlockDevice: BlockDevice {
    let durable: MemoryBlockDevice
    var blockSize: Int { durable.blockSize }
    var blockCount: UInt64 { durable.blockCount }
    var hasVolatileWriteCache: Bool { true }
    private let geometryValue: BlockDeviceGeometry
    private let state = Mutex(State())
    private let loop: any EventLoop

    private struct State {
        /// Unflushed writes in issue order (nil bytes = zeroes).
        var overlay: [(lba: UInt64, blocks: UInt64, bytes: [UInt8]?)] = []
        var crashed = false
        var operations = 0
        var crashAt: (operation: Int, seed: UInt64)?
        var flushes = 0
    }

    init(durable: MemoryBlockDevice, loop: any EventLoop) {
        self.durable = durable
        self.geometryValue = durable.geometry
        self.loop = loop
    }

    var flushCount: Int { state.withLock { $0.flushes } }
    var isCrashed: Bool { state.withLock { $0.crashed } }

    /// Crash when the `operation`-th mutating call (counted from now) arrives, before it runs.
    func crash(atOperation operation: Int, seed: UInt64) {
        state.withLock { s in s.crashAt = (s.operations + operation, seed) }
    }

    /// Power loss now.
    func crash(seed: UInt64) {
        state.withLock { s in crashLocked(&s, seed: seed) }
    }

    private func crashLocked(_ s: inout State, seed: UInt64) {
        guard !s.crashed else { return }
        s.crashed = true
        var rng = SplitMix64(seed: seed)
        let sector = UInt64(durable.blockSize)
        for entry in s.overlay {
            switch rng.next() % 3 {
            case 0:
                continue
            case 1:
                apply(entry.lba, entry.blocks, entry.bytes)
            default:
                for i in 0..<entry.blocks where rng.next() % 2 == 0 {
                    let bytes = entry.bytes.map { Array($0[Int(i * sector)..<Int((i + 1) * sector)]) }
                    apply(entry.lba + i, 1, bytes)
                }
            }
        }
        s.overlay = []
    }

    private func apply(_ lba: UInt64, _ blocks: UInt64, _ bytes: [UInt8]?) {
        if let bytes {
            durable.write(lba: lba, data: ByteBuffer(bytes: bytes), fua: false, on: loop) { _ in }
        } else {
            _ = durable.writeZeroes(lba: lba, blocks: blocks, deallocate: true, fua: false, on: loop)
        }
    }

    /// Counts a mutating call; false if the device is (now) crashed.
    private func step(_ s: inout State) -> Bool {
        guard !s.crashed else { return false }
        s.operations += 1
        if let crashAt = s.crashAt, s.operations >= crashAt.operation {
            crashLocked(&s, seed: crashAt.seed)
            return false
        }
        return true
    }

    private func flushLocked(_ s: inout State) {
        for entry in s.overlay { apply(entry.lba, entry.blocks, entry.bytes) }
        s.overlay = []
        s.flushes += 1
    }

    func read(lba: UInt64, blocks: UInt32, on eventLoop: any EventLoop) -> EventLoopFuture<ByteBuffer> {
        let count: Int
        do { count = try geometryValue.checkRead(lba: lba, blocks: blocks) } catch { return eventLoop.makeFailedFuture(error) }
        let result: Result<ByteBuffer, any Error> = state.withLock { s in
            guard !s.crashed else { return .failure(BlockDeviceError.closed) }
            var base: Result<ByteBuffer, any Error> = .failure(BlockDeviceError.closed)
            durable.read(lba: lba, blocks: blocks, on: loop) { base = $0 }
            guard case .success(let buffer) = base else { return base }
            var bytes = Array(buffer: buffer)
            let size = UInt64(blockSize)
            for entry in s.overlay {
                let start = max(lba, entry.lba)
                let end = min(lba + UInt64(blocks), entry.lba + entry.blocks)
                guard start < end else { continue }
                for b in start..<end {
                    let to = Int((b - lba) * size)
                    if let source = entry.bytes {
                        let from = Int((b - entry.lba) * size)
                        bytes.replaceSubrange(to..<(to + Int(size)), with: source[from..<(from + Int(size))])
                    } else {
                        bytes.replaceSubrange(to..<(to + Int(size)), with: repeatElement(0, count: Int(size)))
                    }
                }
            }
            precondition(bytes.count == count)
            return .success(ByteBuffer(bytes: bytes))
        }
        return eventLoop.makeCompletedFuture(result)
    }

    func write(lba: UInt64, data: ByteBuffer, fua: Bool, on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        let blocks: UInt64
        do { blocks = try geometryValue.checkWrite(lba: lba, byteCount: data.readableBytes) } catch {
            return eventLoop.makeFailedFuture(error)
        }
        let ok = state.withLock { s -> Bool in
            guard step(&s) else { return false }
            s.overlay.append((lba, blocks, Array(buffer: data)))
            if fua { flushLocked(&s) }
            return true
        }
        return ok ? eventLoop.makeSucceededVoidFuture() : eventLoop.makeFailedFuture(BlockDeviceError.closed)
    }

    func flush(on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        let ok = state.withLock { s -> Bool in
            guard step(&s) else { return false }
            flushLocked(&s)
            return true
        }
        return ok ? eventLoop.makeSucceededVoidFuture() : eventLoop.makeFailedFuture(BlockDeviceError.closed)
    }

    func writeZeroes(lba: UInt64, blocks: UInt64, deallocate: Bool, fua: Bool, on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        do { try geometryValue.checkRange(lba: lba, blocks: blocks) } catch { return eventLoop.makeFailedFuture(error) }
        let ok = state.withLock { s -> Bool in
            guard step(&s) else { return false }
            s.overlay.append((lba, blocks, nil))
            if fua { flushLocked(&s) }
            return true
        }
        return ok ? eventLoop.makeSucceededVoidFuture() : eventLoop.makeFailedFuture(BlockDeviceError.closed)
    }

    func deallocate(lba: UInt64, blocks: UInt64, on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        writeZeroes(lba: lba, blocks: blocks, deallocate: true, fua: false, on: eventLoop)
    }

    func close() throws {}
}
