import Synchronization

/// Read and Write commands admitted for execution (past the namespace and ANA checks) and their
/// data bytes (NVM command set spec 1.0 §3.2.4 Read, §3.2.6 Write): what one queue, controller or
/// listener carried.
public struct IOCounters: Hashable, Sendable, Codable {
    public var readCommands: UInt64 = 0
    public var writeCommands: UInt64 = 0
    public var readBytes: UInt64 = 0
    public var writtenBytes: UInt64 = 0

    public init(readCommands: UInt64 = 0, writeCommands: UInt64 = 0, readBytes: UInt64 = 0, writtenBytes: UInt64 = 0) {
        self.readCommands = readCommands
        self.writeCommands = writeCommands
        self.readBytes = readBytes
        self.writtenBytes = writtenBytes
    }

    public static func + (a: IOCounters, b: IOCounters) -> IOCounters {
        IOCounters(readCommands: a.readCommands &+ b.readCommands, writeCommands: a.writeCommands &+ b.writeCommands,
                   readBytes: a.readBytes &+ b.readBytes, writtenBytes: a.writtenBytes &+ b.writtenBytes)
    }
}

/// One I/O queue's counters. Only the queue's event loop writes them, so a count is a relaxed load
/// and store (no read-modify-write, no lock, no allocation); anyone may read them.
final class QueueIOCounters: Sendable {
    private let readCommands = Atomic<UInt64>(0)
    private let writeCommands = Atomic<UInt64>(0)
    private let readBytes = Atomic<UInt64>(0)
    private let writtenBytes = Atomic<UInt64>(0)

    @inline(__always)
    private static func add(_ counter: borrowing Atomic<UInt64>, _ n: UInt64) {
        counter.store(counter.load(ordering: .relaxed) &+ n, ordering: .relaxed)
    }

    /// On the queue's event loop only.
    @inline(__always)
    func countRead(bytes: UInt32) {
        Self.add(readCommands, 1)
        Self.add(readBytes, UInt64(bytes))
    }

    /// On the queue's event loop only.
    @inline(__always)
    func countWrite(bytes: UInt32) {
        Self.add(writeCommands, 1)
        Self.add(writtenBytes, UInt64(bytes))
    }

    var value: IOCounters {
        IOCounters(readCommands: readCommands.load(ordering: .relaxed), writeCommands: writeCommands.load(ordering: .relaxed),
                   readBytes: readBytes.load(ordering: .relaxed), writtenBytes: writtenBytes.load(ordering: .relaxed))
    }
}

/// The counters of a set of queues (a listener's or a controller's): the live queues' counters are
/// summed when read, and a queue that closes leaves its final counts behind, so totals never go
/// back. The mutex is taken when a queue joins or leaves and when totals are read, never per I/O.
final class IOCounterSet: Sendable {
    private struct State {
        var live: [ObjectIdentifier: QueueIOCounters] = [:]
        var retired = IOCounters()
    }
    private let state = Mutex(State())

    init() {}

    func attach(_ queue: QueueIOCounters) {
        state.withLock { $0.live[ObjectIdentifier(queue)] = queue }
    }

    /// The queue closed (on its event loop, after its last count): its counts stay in the total.
    func retire(_ queue: QueueIOCounters) {
        state.withLock { state in
            guard state.live.removeValue(forKey: ObjectIdentifier(queue)) != nil else { return }
            state.retired = state.retired + queue.value
        }
    }

    var total: IOCounters {
        state.withLock { state in state.live.values.reduce(state.retired) { $0 + $1.value } }
    }
}
