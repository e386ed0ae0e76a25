#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The blocking POSIX operations behind ``RebuildLog``: run on a thread pool, never on an event
/// loop or the cooperative pool. Failures are ``RebuildLogError/io(_:)`` naming the call, the
/// path and `strerror`.
enum RebuildLogFile {
    static func failure(_ what: String, _ path: String, code: Int32 = errno) -> RebuildLogError {
        .io("\(what) \(path): \(String(cString: strerror(code)))")
    }

    /// Creates `path` and its missing parents (like `mkdir -p`), fsyncing the parent of each
    /// directory it creates so the new entries survive a crash.
    static func makeDirectories(_ path: String) throws(RebuildLogError) {
        var prefix = path.hasPrefix("/") ? "" : "."
        for component in path.split(separator: "/", omittingEmptySubsequences: true) {
            let parent = prefix.isEmpty ? "/" : prefix
            prefix += "/" + component
            if mkdir(prefix, 0o755) == 0 {
                try syncDirectory(parent)
            } else if errno != EEXIST {
                throw failure("cannot create directory", prefix)
            }
        }
    }

    /// fsync of a directory, so entries created, renamed or removed in it are durable.
    static func syncDirectory(_ path: String) throws(RebuildLogError) {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw failure("cannot open directory", path) }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw failure("cannot fsync directory", path) }
    }

    /// Opens an existing file read-write; nil when it does not exist.
    static func openExisting(_ path: String) throws(RebuildLogError) -> Int32? {
        let fd = open(path, O_RDWR | O_CLOEXEC)
        if fd >= 0 { return fd }
        if errno == ENOENT { return nil }
        throw failure("cannot open", path)
    }

    /// Writes `bytes` to a new file at `path` durably: `<path>.tmp`, fsync, rename, fsync of
    /// `directory` (which holds `path`); returns the file opened read-write.
    static func create(_ path: String, bytes: [UInt8], directory: String) throws(RebuildLogError) -> Int32 {
        let temporary = path + ".tmp"
        let fd = open(temporary, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw failure("cannot create", temporary) }
        do throws(RebuildLogError) {
            try write(fd, bytes, at: 0, path: temporary)
            guard fsync(fd) == 0 else { throw failure("cannot fsync", temporary) }
            guard rename(temporary, path) == 0 else { throw failure("cannot rename \(temporary) to", path) }
            try syncDirectory(directory)
            return fd
        } catch {
            close(fd)
            unlink(temporary)
            throw error
        }
    }

    /// Takes an exclusive advisory lock on the open file, so a second opener fails fast.
    static func lock(_ fd: Int32, path: String) throws(RebuildLogError) {
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            if errno == EWOULDBLOCK { throw .inUse(path: path) }
            throw failure("cannot lock", path)
        }
    }

    /// The whole file from offset 0.
    static func readAll(_ fd: Int32, path: String) throws(RebuildLogError) -> [UInt8] {
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = chunk.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, off_t(bytes.count)) }
            if n < 0 {
                if errno == EINTR { continue }
                throw failure("cannot read", path)
            }
            if n == 0 { return bytes }
            bytes += chunk[0..<n]
        }
    }

    /// Writes all of `bytes` at `offset`, retrying short writes and EINTR.
    static func write(_ fd: Int32, _ bytes: [UInt8], at offset: UInt64, path: String) throws(RebuildLogError) {
        var failed: Int32 = 0
        bytes.withUnsafeBytes { raw in
            var done = 0
            while done < raw.count {
                let n = pwrite(fd, raw.baseAddress! + done, raw.count - done, off_t(offset) + off_t(done))
                if n < 0 {
                    if errno == EINTR { continue }
                    failed = errno
                    return
                }
                done += n
            }
        }
        if failed != 0 { throw failure("cannot write", path, code: failed) }
    }

    /// fdatasync (fsync where there is none): the appended records and the file size are durable.
    static func syncData(_ fd: Int32, path: String) throws(RebuildLogError) {
        while true {
            #if canImport(Darwin)
            let result = fsync(fd)
            #else
            let result = fdatasync(fd)
            #endif
            if result == 0 { return }
            if errno != EINTR { throw failure("cannot sync", path) }
        }
    }

    /// Cuts the file to `length` bytes and makes the new size durable.
    static func truncate(_ fd: Int32, to length: Int, path: String) throws(RebuildLogError) {
        guard ftruncate(fd, off_t(length)) == 0 else { throw failure("cannot truncate", path) }
        try syncData(fd, path: path)
    }

    /// Removes `path` (absent is fine) and makes the removal durable.
    static func remove(_ path: String, directory: String) throws(RebuildLogError) {
        if unlink(path) != 0 && errno != ENOENT { throw failure("cannot remove", path) }
        try syncDirectory(directory)
    }

    static func exists(_ path: String) -> Bool {
        access(path, F_OK) == 0
    }

    static func close(_ fd: Int32) {
        _ = systemClose(fd)
    }
}

private func systemClose(_ fd: Int32) -> Int32 {
    #if canImport(Glibc)
    Glibc.close(fd)
    #elseif canImport(Musl)
    Musl.close(fd)
    #else
    Darwin.close(fd)
    #endif
}
