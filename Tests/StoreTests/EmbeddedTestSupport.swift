#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization
import Testing
@testable import Store

/// A clock that moves only when a test calls ``advance(by:)``: sleepers wake when it passes
/// their deadline (or throw `CancellationError` when their task is cancelled).
final class ManualClock: Clock, Sendable {
    struct Instant: InstantProtocol {
        var offset: Duration
        func advanced(by duration: Duration) -> Instant { Instant(offset: offset + duration) }
        func duration(to other: Instant) -> Duration { other.offset - offset }
        static func < (lhs: Instant, rhs: Instant) -> Bool { lhs.offset < rhs.offset }
    }

    private struct State {
        var now = Instant(offset: .zero)
        var sleepers: [Int: (deadline: Instant, continuation: CheckedContinuation<Void, any Error>)] = [:]
        var cancelled: Set<Int> = []
        var nextID = 0
    }

    private let state = Mutex(State())

    var now: Instant { state.withLock { $0.now } }
    var minimumResolution: Duration { .zero }

    /// How many tasks are sleeping on this clock.
    var sleeperCount: Int { state.withLock { $0.sleepers.count } }

    func sleep(until deadline: Instant, tolerance: Duration?) async throws {
        let id = state.withLock { state in
            defer { state.nextID += 1 }
            return state.nextID
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                enum Now { case wake, cancel, wait }
                let now = state.withLock { state -> Now in
                    if state.cancelled.remove(id) != nil { return .cancel }
                    if deadline <= state.now { return .wake }
                    state.sleepers[id] = (deadline, continuation)
                    return .wait
                }
                switch now {
                case .wake: continuation.resume()
                case .cancel: continuation.resume(throwing: CancellationError())
                case .wait: break
                }
            }
        } onCancel: {
            let sleeper = state.withLock { state in
                if let sleeper = state.sleepers.removeValue(forKey: id) { return Optional(sleeper) }
                state.cancelled.insert(id)
                return nil
            }
            sleeper?.continuation.resume(throwing: CancellationError())
        }
    }

    /// Moves time forward and wakes every sleeper whose deadline has come.
    func advance(by duration: Duration) {
        let ready = state.withLock { state in
            state.now = state.now.advanced(by: duration)
            let now = state.now
            let ready = state.sleepers.filter { $0.value.deadline <= now }
            for id in ready.keys { state.sleepers[id] = nil }
            return ready.values.map(\.continuation)
        }
        for continuation in ready { continuation.resume() }
    }
}

/// A fresh directory under /tmp, deleted (one level deep: the store's files) by ``remove()``.
struct TemporaryDirectory {
    let path: String

    init() {
        var template = Array("/tmp/halyard-store-test-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        precondition(made != nil, "mkdtemp failed")
        path = String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// A subdirectory path (not created).
    func sub(_ name: String) -> String { path + "/" + name }

    func remove() {
        Self.removeTree(path)
    }

    static func removeTree(_ path: String) {
        if let names = try? StoreFiles.list(path) {
            for name in names {
                let child = path + "/" + name
                if unlink(child) != 0 { removeTree(child) }
            }
        }
        rmdir(path)
    }
}

/// File helpers for damaging a store directory.
enum TestFiles {
    static func read(_ path: String) -> [UInt8] { (try? StoreFiles.read(path)) ?? [] }

    static func write(_ bytes: [UInt8], to path: String) {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        precondition(fd >= 0)
        try? StoreFiles.writeAll(fd, bytes, path: path)
        close(fd)
    }

    static func names(_ directory: String) -> [String] { ((try? StoreFiles.list(directory)) ?? []).sorted() }

    /// Copies the files of `from` into a new directory `to`.
    static func copyDirectory(_ from: String, to: String) {
        mkdir(to, 0o755)
        for name in names(from) where name != "LOCK" { write(read(from + "/" + name), to: to + "/" + name) }
    }

    static let firstWAL = "wal-0000000000000000.log"
}

extension Store {
    /// The key's value as a string, nil when absent.
    func string(_ key: String) async throws -> String? { try await get(key)?.string }
}

/// Collects elements of a watch until `count` events arrived (fails after `timeout` of real time).
func collectEvents(_ stream: AsyncThrowingStream<[WatchEvent], any Error>, events count: Int,
             timeout: Duration = .seconds(10)) async throws -> [WatchEvent] {
    try await withThrowingTaskGroup(of: [WatchEvent]?.self) { group in
        group.addTask {
            var events: [WatchEvent] = []
            for try await batch in stream {
                events += batch
                if events.count >= count { break }
            }
            return events
        }
        group.addTask {
            try await Task.sleep(for: timeout)
            return nil
        }
        let first = try await group.next()!
        group.cancelAll()
        guard let events = first else {
            Issue.record("timed out waiting for \(count) watch events")
            return []
        }
        return events
    }
}

func utf8(_ string: String) -> [UInt8] { Array(string.utf8) }
