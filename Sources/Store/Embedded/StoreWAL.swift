#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The embedded store's directory: `LOCK` (an exclusive `flock`, so two stores never share a
/// directory), `snap-<seq>.bin` (``StoreSnapshot``) and `wal-<seq>.log` (``WALRecord`` frames
/// written after that snapshot; sequence 0 has no snapshot). `<seq>` is 16 hex digits.
///
/// Recovery (``open(directory:now:)``): temporary files are deleted; the newest snapshot is
/// loaded; its WAL is replayed; a torn last frame is truncated away (and the truncation
/// fsynced); older snapshots and WALs are deleted. Appends (``append(_:)``) are one `write` and
/// one `fdatasync`. ``writeSnapshot(_:)`` writes the next snapshot durably, starts its empty WAL
/// (fsyncing the directory) and only then deletes the previous files, so a crash at any point
/// leaves a snapshot and the WAL that follows it.
///
/// Not thread-safe: the store uses it from one thread at a time (opening, then its I/O thread,
/// then closing once I/O has drained).
final class StoreWAL: @unchecked Sendable {
    let directory: String
    private var lockFD: Int32
    private var walFD: Int32
    private(set) var sequence: UInt64
    /// The current WAL's length in bytes.
    private(set) var size: Int
    /// How many fdatasyncs appends have made (group commit makes it smaller than the number of
    /// acknowledged writes).
    private(set) var syncCount = 0

    private init(directory: String, lockFD: Int32, walFD: Int32, sequence: UInt64, size: Int) {
        self.directory = directory
        self.lockFD = lockFD
        self.walFD = walFD
        self.sequence = sequence
        self.size = size
    }

    deinit { close() }

    static func name(_ prefix: String, _ sequence: UInt64, _ suffix: String) -> String {
        let hex = String(sequence, radix: 16)
        return prefix + String(repeating: "0", count: max(0, 16 - hex.count)) + hex + suffix
    }

    static func sequence(of name: String, prefix: String, suffix: String) -> UInt64? {
        guard name.hasPrefix(prefix), name.hasSuffix(suffix), name.count == prefix.count + 16 + suffix.count else { return nil }
        return UInt64(name.dropFirst(prefix.count).dropLast(suffix.count), radix: 16)
    }

    private func path(_ name: String) -> String { directory + "/" + name }

    /// Opens (creating) the directory and recovers its state.
    static func open(directory: String, now: Duration) throws(StoreError) -> (StoreWAL, StoreState, tornTail: Bool) {
        try StoreFiles.makeDirectory(directory)
        let lockPath = directory + "/LOCK"
        let lockFD = StoreFiles.openFile(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard lockFD >= 0 else { throw StoreFiles.failure("cannot open", lockPath) }
        guard flock(lockFD, LOCK_EX | LOCK_NB) == 0 else {
            let code = errno
            StoreFiles.closeFile(lockFD)
            throw StoreFiles.failure("store directory is in use (\(lockPath) is locked)", directory, code: code)
        }
        do {
            return try recover(directory: directory, lockFD: lockFD, now: now)
        } catch {
            StoreFiles.closeFile(lockFD)
            throw error
        }
    }

    private static func recover(directory: String, lockFD: Int32, now: Duration) throws(StoreError) -> (StoreWAL, StoreState, tornTail: Bool) {
        var snapshots: [UInt64] = []
        var wals: [UInt64] = []
        for name in try StoreFiles.list(directory) {
            if name.hasSuffix(".tmp") {
                StoreFiles.remove(directory + "/" + name)
            } else if let sequence = sequence(of: name, prefix: "snap-", suffix: ".bin") {
                snapshots.append(sequence)
            } else if let sequence = sequence(of: name, prefix: "wal-", suffix: ".log") {
                wals.append(sequence)
            }
        }
        let sequence = snapshots.max() ?? 0
        if let newer = wals.filter({ $0 > sequence }).min() {
            throw .corrupt("\(directory)/\(name("wal-", newer, ".log")) has no snapshot")
        }
        var state = StoreState()
        if sequence > 0 {
            let snapshotPath = directory + "/" + name("snap-", sequence, ".bin")
            guard let bytes = try StoreFiles.read(snapshotPath) else { throw .corrupt("\(snapshotPath) vanished") }
            do { state = try StoreSnapshot.decode(bytes, now: now) } catch { throw .corrupt("\(snapshotPath): \(error.description)") }
        }
        let walPath = directory + "/" + name("wal-", sequence, ".log")
        let bytes = try StoreFiles.read(walPath) ?? []
        let scan: WALRecord.Scan
        do {
            scan = try WALRecord.scan(bytes)
            for record in scan.records { try state.replay(record, now: now) }
        } catch {
            throw .corrupt("\(walPath): \(error.description)")
        }
        let fd = StoreFiles.openFile(walPath, O_WRONLY | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw StoreFiles.failure("cannot open", walPath) }
        let wal = StoreWAL(directory: directory, lockFD: lockFD, walFD: fd, sequence: sequence, size: scan.validLength)
        do {
            try wal.finishRecovery(truncate: scan.tornTail, created: bytes.isEmpty, path: walPath)
        } catch {
            wal.lockFD = -1  // the caller closes it
            throw error
        }
        for old in snapshots where old < sequence { StoreFiles.remove(directory + "/" + name("snap-", old, ".bin")) }
        for old in wals where old < sequence { StoreFiles.remove(directory + "/" + name("wal-", old, ".log")) }
        return (wal, state, scan.tornTail)
    }

    private func finishRecovery(truncate: Bool, created: Bool, path walPath: String) throws(StoreError) {
        let fd = walFD
        if truncate || created {
            if truncate {
                guard ftruncate(fd, off_t(size)) == 0 else { throw StoreFiles.failure("cannot truncate", walPath) }
            }
            try StoreFiles.sync(fd, path: walPath)
            try StoreFiles.syncDirectory(directory)
        }
        guard lseek(fd, off_t(size), SEEK_SET) >= 0 else { throw StoreFiles.failure("cannot seek", walPath) }
    }

    /// Appends `bytes` (whole frames) and makes them durable.
    func append(_ bytes: [UInt8]) throws(StoreError) {
        let walPath = path(Self.name("wal-", sequence, ".log"))
        try StoreFiles.writeAll(walFD, bytes, path: walPath)
        size += bytes.count
        try StoreFiles.syncData(walFD, path: walPath)
        syncCount += 1
    }

    /// Where a snapshot failed: before its rename (nothing changed: keep appending to the
    /// current WAL) or after it (the store cannot safely continue).
    enum SnapshotFailure: Error {
        case beforeRename(StoreError)
        case afterRename(StoreError)
    }

    /// Writes `state` (which must be exactly what the current WAL's frames produce) as the next
    /// snapshot, switches to a new empty WAL and deletes the previous files.
    func writeSnapshot(_ state: StoreState) throws(SnapshotFailure) {
        let next = sequence + 1
        let snapshotPath = path(Self.name("snap-", next, ".bin"))
        do {
            try StoreFiles.writeDurably(StoreSnapshot.encode(state), to: snapshotPath, directory: directory)
        } catch {
            throw .beforeRename(error)
        }
        let walPath = path(Self.name("wal-", next, ".log"))
        let fd = StoreFiles.openFile(walPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw .afterRename(StoreFiles.failure("cannot create", walPath)) }
        do {
            try StoreFiles.syncDirectory(directory)
        } catch {
            StoreFiles.closeFile(fd)
            throw .afterRename(error)
        }
        let previous = sequence
        StoreFiles.closeFile(walFD)
        walFD = fd
        sequence = next
        size = 0
        StoreFiles.remove(path(Self.name("wal-", previous, ".log")))
        if previous > 0 { StoreFiles.remove(path(Self.name("snap-", previous, ".bin"))) }
    }

    /// Closes the WAL and releases the directory lock. Idempotent.
    func close() {
        if walFD >= 0 { StoreFiles.closeFile(walFD) }
        if lockFD >= 0 { StoreFiles.closeFile(lockFD) }
        walFD = -1
        lockFD = -1
    }
}
