#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import NIOCore
import NIOPosix
import Synchronization

/// A ``BlockDevice`` backed by a sparse regular file or a block device (`/dev/…`, sized with
/// the BLKGETSIZE64 ioctl).
///
/// All I/O is positional (`pread`/`pwrite`) and runs on an `NIOThreadPool`, never on an event
/// loop; futures complete on the event loop passed to each call. Writes may sit in the page
/// cache until ``flush(on:)`` or a FUA write, which `fdatasync` the file. Write Zeroes and
/// Deallocate punch holes (`fallocate(PUNCH_HOLE | KEEP_SIZE)`), falling back to writing
/// zeroes where the file system does not support it.
///
/// Closing while I/O is in flight is safe: the descriptor is released once the last in-flight
/// operation finishes, and operations that had not started yet fail with
/// ``BlockDeviceError/closed``.
public final class FileBlockDevice: BlockDevice {
    /// The backing file's path, as given to ``open(path:size:blockSize:threadPool:)``.
    public let path: String
    public let blockSize: Int
    public let blockCount: UInt64
    public var hasVolatileWriteCache: Bool { true }

    private let geometryValue: BlockDeviceGeometry
    private let threadPool: NIOThreadPool
    private let descriptor: Mutex<DescriptorState>
    /// Cleared after the first EOPNOTSUPP from `fallocate`, so later calls write zeroes directly.
    private let holePunchingSupported = Atomic<Bool>(true)

    private init(path: String, fd: Int32, geometry: BlockDeviceGeometry, threadPool: NIOThreadPool) {
        self.path = path
        self.blockSize = geometry.blockSize
        self.blockCount = geometry.blockCount
        self.geometryValue = geometry
        self.threadPool = threadPool
        self.descriptor = Mutex(DescriptorState(fd: fd))
    }

    deinit {
        let fd = descriptor.withLock { $0.fd }
        if fd >= 0 {
            try? FileDescriptorIO.closeDescriptor(fd)
        }
    }

    /// Opens (or creates) the backing file at `path`.
    ///
    /// - If the file does not exist, it is created sparse (no blocks allocated) with `size`
    ///   bytes; `size` is then required.
    /// - If it exists and `size` is nil, its current size is used.
    /// - If it exists and `size` differs from its size, this throws
    ///   ``FileBlockDeviceError/sizeMismatch(path:existing:requested:)`` and leaves the file
    ///   untouched: an existing file is never truncated or extended.
    ///
    /// The size must be a non-zero multiple of `blockSize`. This performs blocking system
    /// calls: call it at startup or from a thread pool, not on an event loop.
    public static func open(
        path: String,
        size: UInt64?,
        blockSize: Int,
        threadPool: NIOThreadPool
    ) throws -> FileBlockDevice {
        guard BlockDeviceGeometry.isValidBlockSize(blockSize) else {
            throw FileBlockDeviceError.invalidBlockSize(blockSize)
        }
        if let size {
            guard size > 0, size % UInt64(blockSize) == 0, size <= UInt64(Int64.max) else {
                throw FileBlockDeviceError.invalidSize(path: path, size: size, blockSize: blockSize)
            }
        }
        let fd = try openOrCreate(path: path, size: size)
        do {
            let existing = try regularFileSize(fd: fd, path: path)
            if let size, size != existing {
                throw FileBlockDeviceError.sizeMismatch(path: path, existing: existing, requested: size)
            }
            guard existing > 0, existing % UInt64(blockSize) == 0,
                let geometry = BlockDeviceGeometry(blockSize: blockSize, blockCount: existing / UInt64(blockSize))
            else {
                throw FileBlockDeviceError.invalidSize(path: path, size: existing, blockSize: blockSize)
            }
            return FileBlockDevice(path: path, fd: fd, geometry: geometry, threadPool: threadPool)
        } catch {
            try? FileDescriptorIO.closeDescriptor(fd)
            throw error
        }
    }

    /// Opens an existing file, or creates it sparse with `size` bytes if it does not exist.
    private static func openOrCreate(path: String, size: UInt64?) throws -> Int32 {
        while true {
            let fd = FileDescriptorIO.openDescriptor(path: path, flags: O_RDWR | O_CLOEXEC)
            if fd >= 0 { return fd }
            guard errno == ENOENT else {
                throw FileBlockDeviceError.systemCallFailed(path: path, call: "open", errno: errno)
            }
            guard let size else {
                throw FileBlockDeviceError.sizeRequired(path: path)
            }
            let created = FileDescriptorIO.openDescriptor(
                path: path,
                flags: O_RDWR | O_CLOEXEC | O_CREAT | O_EXCL,
                mode: 0o600
            )
            if created < 0 {
                // Someone else created it between our two opens: open theirs instead.
                if errno == EEXIST { continue }
                throw FileBlockDeviceError.systemCallFailed(path: path, call: "open(O_CREAT)", errno: errno)
            }
            // A freshly created file: extending it with ftruncate allocates no blocks.
            if ftruncate(created, off_t(size)) != 0 {
                let code = errno
                try? FileDescriptorIO.closeDescriptor(created)
                unlink(path)
                throw FileBlockDeviceError.systemCallFailed(path: path, call: "ftruncate", errno: code)
            }
            return created
        }
    }

    /// The size of the regular file or block device open as `fd` (a block device's size comes
    /// from the BLKGETSIZE64 ioctl).
    private static func regularFileSize(fd: Int32, path: String) throws -> UInt64 {
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            throw FileBlockDeviceError.systemCallFailed(path: path, call: "fstat", errno: errno)
        }
        switch info.st_mode & S_IFMT {
        case S_IFREG:
            return UInt64(info.st_size)
        case S_IFBLK:
            return try blockDeviceSize(fd: fd, path: path)
        default:
            throw FileBlockDeviceError.notRegularFile(path: path)
        }
    }

    /// `BLKGETSIZE64` = `_IOR(0x12, 114, size_t)`: the size of a block device in bytes.
    static let blockDeviceSizeRequest: UInt = 0x8008_1272

    /// The size in bytes of the block device open as `fd`.
    private static func blockDeviceSize(fd: Int32, path: String) throws -> UInt64 {
        #if os(Linux)
        var size: UInt64 = 0
        let result = withUnsafeMutablePointer(to: &size) { ioctl(fd, blockDeviceSizeRequest, UnsafeMutableRawPointer($0)) }
        guard result == 0 else {
            throw FileBlockDeviceError.systemCallFailed(path: path, call: "ioctl(BLKGETSIZE64)", errno: errno)
        }
        return size
        #else
        throw FileBlockDeviceError.notRegularFile(path: path)
        #endif
    }

    public func read(lba: UInt64, blocks: UInt32, on eventLoop: any EventLoop) -> EventLoopFuture<ByteBuffer> {
        let byteCount: Int
        do {
            byteCount = try geometryValue.checkRead(lba: lba, blocks: blocks)
        } catch {
            return eventLoop.makeFailedFuture(error)
        }
        let offset = geometryValue.byteOffset(of: lba)
        return run(on: eventLoop) { fd in
            var buffer = ByteBufferAllocator().buffer(capacity: byteCount)
            try buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: byteCount) { destination in
                let target = UnsafeMutableRawBufferPointer(rebasing: destination[0..<byteCount])
                try FileDescriptorIO.read(fd: fd, into: target, at: offset)
                return byteCount
            }
            return buffer
        }
    }

    public func write(lba: UInt64, data: ByteBuffer, fua: Bool, on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        do {
            _ = try geometryValue.checkWrite(lba: lba, byteCount: data.readableBytes)
        } catch {
            return eventLoop.makeFailedFuture(error)
        }
        let offset = geometryValue.byteOffset(of: lba)
        return run(on: eventLoop) { fd in
            try data.withUnsafeReadableBytes { source in
                try FileDescriptorIO.write(fd: fd, from: source, at: offset)
            }
            if fua {
                try FileDescriptorIO.synchronize(fd: fd)
            }
        }
    }

    public func flush(on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        run(on: eventLoop) { fd in
            try FileDescriptorIO.synchronize(fd: fd)
        }
    }

    public func writeZeroes(
        lba: UInt64,
        blocks: UInt64,
        deallocate: Bool,
        fua: Bool,
        on eventLoop: any EventLoop
    ) -> EventLoopFuture<Void> {
        zero(lba: lba, blocks: blocks, synchronize: fua, on: eventLoop)
    }

    public func deallocate(lba: UInt64, blocks: UInt64, on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        zero(lba: lba, blocks: blocks, synchronize: false, on: eventLoop)
    }

    /// Releases the file descriptor (immediately, or when the last in-flight operation ends).
    /// Later calls fail with ``BlockDeviceError/closed``. Idempotent. Does not flush.
    public func close() throws {
        let fd: Int32? = descriptor.withLock { state in
            guard !state.closed else { return nil }
            state.closed = true
            return state.takeDescriptorIfIdle()
        }
        if let fd {
            try FileDescriptorIO.closeDescriptor(fd)
        }
    }

    /// Zeroes a range by punching a hole, or by writing zeroes where holes are unsupported.
    private func zero(lba: UInt64, blocks: UInt64, synchronize: Bool, on eventLoop: any EventLoop)
        -> EventLoopFuture<Void>
    {
        do {
            try geometryValue.checkRange(lba: lba, blocks: blocks)
        } catch {
            return eventLoop.makeFailedFuture(error)
        }
        let offset = geometryValue.byteOffset(of: lba)
        let length = blocks &* UInt64(blockSize)
        return run(on: eventLoop) { [self] fd in
            var punched = false
            if self.holePunchingSupported.load(ordering: .relaxed) {
                punched = try FileDescriptorIO.punchHole(fd: fd, at: offset, length: length)
                if !punched {
                    self.holePunchingSupported.store(false, ordering: .relaxed)
                }
            }
            if !punched {
                try FileDescriptorIO.writeZeroes(fd: fd, at: offset, length: length)
            }
            if synchronize {
                try FileDescriptorIO.synchronize(fd: fd)
            }
        }
    }

    /// Turns off hole punching, as if the file system had answered EOPNOTSUPP (for tests of
    /// the zero-writing fallback).
    func disableHolePunching() {
        holePunchingSupported.store(false, ordering: .relaxed)
    }

    /// Runs `body` with the open descriptor on the thread pool, completing on `eventLoop`.
    /// The descriptor stays open until `body` returns, even if `close()` is called meanwhile.
    private func run<T: Sendable>(
        on eventLoop: any EventLoop,
        _ body: @escaping @Sendable (Int32) throws -> T
    ) -> EventLoopFuture<T> {
        if descriptor.withLock({ $0.closed }) {
            return eventLoop.makeFailedFuture(BlockDeviceError.closed)
        }
        return threadPool.runIfActive(eventLoop: eventLoop) { [self] in
            guard let fd = acquireDescriptor() else { throw BlockDeviceError.closed }
            defer { releaseDescriptor() }
            return try body(fd)
        }.flatMapErrorThrowing { error in
            // A thread pool that was shut down can no longer serve this device.
            if error is NIOThreadPoolError.ThreadPoolInactive { throw BlockDeviceError.closed }
            throw error
        }
    }

    private func acquireDescriptor() -> Int32? {
        descriptor.withLock { state in
            guard !state.closed else { return nil }
            state.inFlight += 1
            return state.fd
        }
    }

    private func releaseDescriptor() {
        let fd: Int32? = descriptor.withLock { state in
            state.inFlight -= 1
            return state.closed ? state.takeDescriptorIfIdle() : nil
        }
        if let fd {
            try? FileDescriptorIO.closeDescriptor(fd)
        }
    }
}

extension FileBlockDevice {
    /// The descriptor, whether the device is closed, and how many operations are using it.
    private struct DescriptorState {
        var fd: Int32
        var closed = false
        var inFlight = 0

        /// Hands out the descriptor for closing once nothing uses it any more (at most once).
        mutating func takeDescriptorIfIdle() -> Int32? {
            guard inFlight == 0, fd >= 0 else { return nil }
            defer { fd = -1 }
            return fd
        }
    }
}
