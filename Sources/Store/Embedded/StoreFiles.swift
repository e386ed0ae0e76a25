#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The POSIX file operations of the embedded store's directory (blocking: called on the
/// store's I/O thread, or while opening). Failures are ``StoreError/unavailable(_:)`` with the
/// path and `strerror`.
enum StoreFiles {
    static func failure(_ what: String, _ path: String, code: Int32 = errno) -> StoreError {
        .unavailable("\(what) \(path): \(String(cString: strerror(code)))")
    }

    /// Creates `path` (one level) unless it exists.
    static func makeDirectory(_ path: String) throws(StoreError) {
        if mkdir(path, 0o755) != 0 && errno != EEXIST { throw failure("cannot create directory", path) }
    }

    /// The names in `directory` (without `.` and `..`).
    static func list(_ directory: String) throws(StoreError) -> [String] {
        guard let handle = opendir(directory) else { throw failure("cannot list", directory) }
        defer { closedir(handle) }
        var names: [String] = []
        while let entry = readdir(handle) {
            let name = withUnsafePointer(to: entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: MemoryLayout.size(ofValue: entry.pointee.d_name)) { String(cString: $0) }
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    /// The whole file; nil when it does not exist.
    static func read(_ path: String) throws(StoreError) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 {
            if errno == ENOENT { return nil }
            throw failure("cannot open", path)
        }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let n = chunk.withUnsafeMutableBytes { posixRead(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw failure("cannot read", path)
            }
            if n == 0 { return bytes }
            bytes += chunk[0..<n]
        }
    }

    /// Writes all of `bytes` at the file offset (retrying short writes and EINTR).
    static func writeAll(_ fd: Int32, _ bytes: [UInt8], path: String) throws(StoreError) {
        var failed: Int32 = 0
        bytes.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = write(fd, raw.baseAddress! + offset, raw.count - offset)
                if n < 0 {
                    if errno == EINTR { continue }
                    failed = errno
                    return
                }
                offset += n
            }
        }
        if failed != 0 { throw failure("cannot write", path, code: failed) }
    }

    /// fdatasync (fsync where there is none).
    static func syncData(_ fd: Int32, path: String) throws(StoreError) {
        #if canImport(Darwin)
        let result = fsync(fd)
        #else
        let result = fdatasync(fd)
        #endif
        if result != 0 { throw failure("cannot sync", path) }
    }

    static func sync(_ fd: Int32, path: String) throws(StoreError) {
        if fsync(fd) != 0 { throw failure("cannot fsync", path) }
    }

    /// fsync of a directory, so creations, renames and deletions in it are durable.
    static func syncDirectory(_ directory: String) throws(StoreError) {
        let fd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw failure("cannot open directory", directory) }
        defer { close(fd) }
        try sync(fd, path: directory)
    }

    /// Writes a whole file durably: `<path>.tmp`, fsync, rename over `path`, fsync of the
    /// directory (the discipline of `ReservationStateFile`).
    static func writeDurably(_ bytes: [UInt8], to path: String, directory: String) throws(StoreError) {
        let temporary = path + ".tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw failure("cannot create", temporary) }
        do {
            defer { close(fd) }
            try writeAll(fd, bytes, path: temporary)
            try sync(fd, path: temporary)
        } catch {
            unlink(temporary)
            throw error
        }
        guard rename(temporary, path) == 0 else {
            let code = errno
            unlink(temporary)
            throw failure("cannot rename \(temporary) to", path, code: code)
        }
        try syncDirectory(directory)
    }

    static func remove(_ path: String) { unlink(path) }

    static func openFile(_ path: String, _ flags: Int32, _ mode: mode_t = 0) -> Int32 { open(path, flags, mode) }

    static func closeFile(_ fd: Int32) { close(fd) }
}

private func posixRead(_ fd: Int32, _ buffer: UnsafeMutableRawPointer?, _ count: Int) -> Int { read(fd, buffer, count) }
