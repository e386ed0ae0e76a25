#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Blocking positional I/O on a file descriptor, retrying on `EINTR` and short transfers.
/// Every function throws ``BlockDeviceError/ioError(errno:)``; they must run on a thread
/// pool, never on an event loop.
enum FileDescriptorIO {
    /// Flags for `fallocate(2)`: FALLOC_FL_KEEP_SIZE (0x01) | FALLOC_FL_PUNCH_HOLE (0x02).
    /// Glibc's Swift module does not export them (they need _GNU_SOURCE).
    static let punchHoleMode: Int32 = 0x01 | 0x02

    /// Reads exactly `buffer.count` bytes at `offset`. Reaching end of file early is EIO:
    /// the backing file is never shorter than the device unless someone truncated it.
    static func read(fd: Int32, into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws(BlockDeviceError) {
        guard let base = buffer.baseAddress else { return }
        var done = 0
        while done < buffer.count {
            let n = pread(fd, base + done, buffer.count - done, off_t(offset) + off_t(done))
            if n > 0 {
                done += n
            } else if n == 0 {
                throw .ioError(errno: EIO)
            } else if errno != EINTR {
                throw .ioError(errno: errno)
            }
        }
    }

    /// Writes all of `buffer` at `offset`.
    static func write(fd: Int32, from buffer: UnsafeRawBufferPointer, at offset: UInt64) throws(BlockDeviceError) {
        guard let base = buffer.baseAddress else { return }
        var done = 0
        while done < buffer.count {
            let n = pwrite(fd, base + done, buffer.count - done, off_t(offset) + off_t(done))
            if n > 0 {
                done += n
            } else if n == 0 {
                throw .ioError(errno: EIO)
            } else if errno != EINTR {
                throw errno == ENOSPC ? .noSpace : .ioError(errno: errno)
            }
        }
    }

    /// Writes `length` zero bytes at `offset`, in chunks of at most 1 MiB.
    static func writeZeroes(fd: Int32, at offset: UInt64, length: UInt64) throws(BlockDeviceError) {
        guard length > 0 else { return }
        let chunk = Int(min(length, 1 << 20))
        let zeroes = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 4096)
        defer { zeroes.deallocate() }
        zeroes.initializeMemory(as: UInt8.self, repeating: 0)
        var done: UInt64 = 0
        while done < length {
            let count = Int(min(UInt64(chunk), length - done))
            try write(fd: fd, from: UnsafeRawBufferPointer(rebasing: zeroes[0..<count]), at: offset + done)
            done += UInt64(count)
        }
    }

    /// Flushes written data to stable storage (fdatasync; fsync where fdatasync is missing).
    static func synchronize(fd: Int32) throws(BlockDeviceError) {
        while true {
            #if os(Linux)
            let result = fdatasync(fd)
            #else
            let result = fsync(fd)
            #endif
            if result == 0 { return }
            if errno == ENOSPC { throw .noSpace }
            if errno != EINTR { throw .ioError(errno: errno) }
        }
    }

    /// Punches a hole (deallocates, keeping the file size). Returns false if the platform or
    /// file system does not support it (EOPNOTSUPP/ENOSYS/EINVAL), so the caller can write
    /// zeroes. On a block device Linux guarantees the punched range reads as zeroes (it zeroes
    /// without fallback or fails with EOPNOTSUPP).
    static func punchHole(fd: Int32, at offset: UInt64, length: UInt64) throws(BlockDeviceError) -> Bool {
        guard length > 0 else { return true }
        #if os(Linux)
        guard let fallocate = Fallocate.function else { return false }
        while true {
            if fallocate(fd, punchHoleMode, Int64(offset), Int64(length)) == 0 { return true }
            switch errno {
            case EINTR:
                continue
            case EOPNOTSUPP, ENOSYS, EINVAL:
                // EINVAL: a block device whose driver cannot punch (zero without fallback).
                return false
            case ENOSPC:
                throw .noSpace
            case let code:
                throw .ioError(errno: code)
            }
        }
        #else
        return false
        #endif
    }
}

#if os(Linux)
/// `fallocate(2)`, looked up at run time: Glibc's Swift module hides its declaration behind
/// _GNU_SOURCE, and the package has no C shim target for it.
private enum Fallocate {
    typealias Function = @convention(c) (Int32, Int32, Int64, Int64) -> Int32

    static let function: Function? = {
        guard let handle = dlopen(nil, RTLD_NOW), let symbol = dlsym(handle, "fallocate") else {
            return nil
        }
        return unsafeBitCast(symbol, to: Function.self)
    }()
}
#endif

extension FileDescriptorIO {
    /// `open(2)`, retried on EINTR. Returns the descriptor, or -1 with `errno` set.
    static func openDescriptor(path: String, flags: Int32, mode: mode_t = 0) -> Int32 {
        while true {
            let fd = open(path, flags, mode)
            if fd >= 0 || errno != EINTR { return fd }
        }
    }

    /// `close(2)`. Not retried on EINTR: on Linux the descriptor is released regardless.
    static func closeDescriptor(_ fd: Int32) throws(BlockDeviceError) {
        if close(fd) != 0 && errno != EINTR {
            throw .ioError(errno: errno)
        }
    }
}
