import NIOCore
import NVMe
import Synchronization

/// A block device `Verify` can run against (``MultipathDevice``, or a test double).
public protocol VerifyDevice: Sendable {
    var blockSize: Int { get }
    var blockCount: UInt64 { get }
    func read(lba: UInt64, blocks: UInt32) async throws -> ByteBuffer
    func write(lba: UInt64, data: ByteBuffer, fua: Bool) async throws
}

extension MultipathDevice: VerifyDevice {}

/// Which unit each write goes to.
public enum VerifyPattern: String, Hashable, Sendable, CaseIterable {
    /// Uniformly random units (never two writes to one unit at once).
    case random
    /// Unit 0, 1, 2, … wrapping around: every unit once per pass, generation = pass.
    case sequential
}

/// What `halyard nvme verify` asks for.
public struct VerifyOptions: Sendable {
    /// Seeds the unit choice and every block's content; a run is reproducible from it.
    public var seed: UInt64
    /// First byte of the region (a multiple of the block size).
    public var offset: UInt64 = 0
    /// Bytes of the region; nil = to the end of the device. Rounded down to whole write units.
    public var size: UInt64?
    /// How long to write (the read-back comes after).
    public var duration: Duration
    /// Writes kept in flight.
    public var queueDepth: Int = 16
    /// Blocks per write (one write unit).
    public var blocksPerWrite: Int = 8
    public var pattern: VerifyPattern = .random
    /// Stop writing after this many writes even if `duration` has not elapsed.
    public var maxWrites: Int?
    public var fua = false
    /// How many problems the report lists (all are counted).
    public var maxProblems = 32
    /// How often `progress` is called during the write phase.
    public var progressInterval: Duration = .seconds(1)

    public init(seed: UInt64, size: UInt64? = nil, duration: Duration, queueDepth: Int = 16, blocksPerWrite: Int = 8) {
        self.seed = seed
        self.size = size
        self.duration = duration
        self.queueDepth = queueDepth
        self.blocksPerWrite = blocksPerWrite
    }
}

/// How one block read back.
public enum VerifyOutcome: String, Hashable, Sendable, CaseIterable {
    /// The last acknowledged generation.
    case ok
    /// A generation whose write failed (outcome unknown), newer than the acknowledged one — or
    /// the acknowledged one while such a write was pending: either is allowed.
    case okInFlight = "ok-in-flight"
    /// Older than the last acknowledged write (or zeros although a write was acknowledged).
    case lost
    /// Not a valid block of this run for this LBA: bad stamp, checksum, LBA, or an unknown generation.
    case corrupt
    /// No write to it was attempted in this run (zeros, or whatever was there before).
    case neverWritten = "never-written"
    /// The read-back failed, so nothing is known.
    case unreadable
}

/// One block that did not read back as expected.
public struct VerifyProblem: Hashable, Sendable, CustomStringConvertible {
    public var lba: UInt64
    public var outcome: VerifyOutcome
    /// Last acknowledged generation (0 = none).
    public var expectedGeneration: UInt32
    /// The generation found (nil for zeros, garbage or a failed read).
    public var foundGeneration: UInt32?
    public var detail: String

    public var description: String {
        "LBA \(lba): \(outcome.rawValue), expected generation \(expectedGeneration), found \(foundGeneration.map(String.init) ?? "none") (\(detail))"
    }
}

/// Progress during the write phase.
public struct VerifyProgress: Sendable {
    public var elapsed: Duration
    public var writesIssued: Int
    public var writesAcknowledged: Int
    public var writesFailed: Int
}

/// The result of a run.
public struct VerifyReport: Sendable, CustomStringConvertible {
    public var seed: UInt64
    public var blockSize: Int
    /// The region: first LBA and number of blocks.
    public var firstLBA: UInt64
    public var blockCount: UInt64
    public var writesIssued = 0
    public var writesAcknowledged = 0
    /// Writes that returned an error (their generation counts as in flight).
    public var writesFailed = 0
    /// The first few write errors.
    public var writeErrors: [String] = []
    public var writeTime: Duration = .zero
    public var readTime: Duration = .zero
    /// Blocks per outcome.
    public var counts: [VerifyOutcome: Int] = [:]
    /// The first `maxProblems` blocks that are lost, corrupt or unreadable, by LBA.
    public var problems: [VerifyProblem] = []

    public func count(_ outcome: VerifyOutcome) -> Int { counts[outcome, default: 0] }

    /// No block lost, corrupt or unreadable. (Failed writes alone do not fail a run: the data
    /// stayed consistent; they are reported.)
    public var passed: Bool { count(.lost) == 0 && count(.corrupt) == 0 && count(.unreadable) == 0 }

    public var description: String {
        let tenths = writeTime.components.seconds * 10 + writeTime.components.attoseconds / 100_000_000_000_000_000
        var lines = [
            "verify \(passed ? "PASSED" : "FAILED"): seed \(seed), LBAs \(firstLBA)..<\(firstLBA + blockCount) (\(blockSize)-byte blocks)",
            "writes: \(writesIssued) issued, \(writesAcknowledged) acknowledged, \(writesFailed) failed in \(tenths / 10).\(tenths % 10) s",
            "blocks: " + VerifyOutcome.allCases.map { "\(count($0)) \($0.rawValue)" }.joined(separator: ", "),
        ]
        lines += problems.map { "  \($0)" }
        lines += writeErrors.map { "  write error: \($0)" }
        return lines.joined(separator: "\n")
    }
}

/// `halyard nvme verify`: writes self-describing blocks (``VerifyBlock``) over a region for a
/// while with a fixed number in flight, remembers per write unit the last acknowledged generation
/// and the generations whose writes failed, then reads the region back and classifies every
/// block. Through a ``MultipathDevice`` it keeps going across path failures.
///
/// A write that fails is counted and its generation treated as in flight (either the old or the
/// new block may be found); the writer pauses 100 ms and goes on. With no `fastIOFailTimeout` on
/// the paths a write waits as long as any path is reconnecting, so the write phase can outlast
/// `duration` while every path is down.
public enum Verify {
    public static func run(_ device: some VerifyDevice, options: VerifyOptions,
                           progress: (@Sendable (VerifyProgress) -> Void)? = nil) async throws -> VerifyReport {
        let blockSize = device.blockSize
        let unitBlocks = options.blocksPerWrite
        guard unitBlocks > 0, options.queueDepth > 0 else { throw NVMeHostError.invalidArgument("queue depth and blocks per write must be positive") }
        guard options.offset % UInt64(blockSize) == 0 else { throw NVMeHostError.invalidArgument("offset \(options.offset) is not block aligned") }
        let firstLBA = options.offset / UInt64(blockSize)
        guard firstLBA < device.blockCount else { throw NVMeHostError.invalidArgument("offset beyond the device") }
        let available = device.blockCount - firstLBA
        let regionBlocks = min(available, (options.size ?? available * UInt64(blockSize)) / UInt64(blockSize))
        let units = Int(regionBlocks / UInt64(unitBlocks))
        guard units > 0 else { throw NVMeHostError.invalidArgument("region smaller than one write of \(unitBlocks) blocks") }

        var report = VerifyReport(seed: options.seed, blockSize: blockSize, firstLBA: firstLBA, blockCount: UInt64(units * unitBlocks))
        let ledger = LedgerBox(Ledger(units: units, seed: options.seed))
        let clock = ContinuousClock()
        let start = clock.now
        let deadline = start + options.duration
        let depth = min(options.queueDepth, units)

        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<depth {
                group.addTask {
                    try await writer(device, options: options, firstLBA: firstLBA, ledger: ledger, deadline: deadline, clock: clock)
                }
            }
            if let progress {
                group.addTask {
                    while clock.now < deadline {
                        try await Task.sleep(for: min(options.progressInterval, deadline - clock.now))
                        let p = ledger.withLock { VerifyProgress(elapsed: clock.now - start, writesIssued: $0.issuedCount,
                                                                 writesAcknowledged: $0.acknowledged, writesFailed: $0.failed) }
                        progress(p)
                        if ledger.withLock({ $0.stopped }) { break }
                    }
                }
            }
            try await group.waitForAll()
        }
        report.writeTime = clock.now - start
        let final = ledger.withLock { $0 }
        precondition(final.busy.allSatisfy { !$0 }, "a write is still in flight after the write phase")
        report.writesIssued = final.issuedCount
        report.writesAcknowledged = final.acknowledged
        report.writesFailed = final.failed
        report.writeErrors = final.errors

        let readStart = clock.now
        try await readBack(device, options: options, firstLBA: firstLBA, units: units, ledger: final, report: &report)
        report.readTime = clock.now - readStart
        return report
    }

    // MARK: Write phase

    /// The ledger, shared by the writers.
    final class LedgerBox: Sendable {
        private let mutex: Mutex<Ledger>
        init(_ ledger: Ledger) { mutex = Mutex(ledger) }
        func withLock<R: Sendable>(_ body: (inout Ledger) -> R) -> R { mutex.withLock { body(&$0) } }
    }

    /// What the run knows about each write unit.
    struct Ledger {
        /// Last generation issued per unit (0 = none).
        var issued: [UInt32]
        /// Last generation acknowledged per unit (0 = none).
        var acked: [UInt32]
        /// Generations whose write failed, per unit (the block may hold them or older).
        var uncertain: [Int: [UInt32]] = [:]
        /// A write to the unit is in flight (never two at once, so acknowledgements are ordered).
        var busy: [Bool]
        var cursor = 0
        var random: VerifyRandom
        var issuedCount = 0
        var acknowledged = 0
        var failed = 0
        var errors: [String] = []
        var stopped = false

        init(units: Int, seed: UInt64) {
            issued = Array(repeating: 0, count: units)
            acked = Array(repeating: 0, count: units)
            busy = Array(repeating: false, count: units)
            random = VerifyRandom(seed: seed ^ 0x5EED_0F_0A11_DA7A)
        }

        /// Picks a free unit and its next generation, or nil when the run should stop.
        mutating func next(pattern: VerifyPattern, maxWrites: Int?) -> (unit: Int, generation: UInt32)? {
            if stopped { return nil }
            if let maxWrites, issuedCount >= maxWrites {
                stopped = true
                return nil
            }
            let units = busy.count
            var unit: Int
            switch pattern {
            case .random: unit = Int(random.next() % UInt64(units))
            case .sequential:
                unit = cursor
                cursor = (cursor + 1) % units
            }
            var probes = 0
            while busy[unit] {
                unit = (unit + 1) % units
                probes += 1
                precondition(probes < units, "every unit busy: more writers than units")
            }
            busy[unit] = true
            issued[unit] += 1
            issuedCount += 1
            return (unit, issued[unit])
        }

        mutating func finished(unit: Int, generation: UInt32, error: (any Error)?) {
            precondition(busy[unit] && issued[unit] == generation, "write completion out of order for unit \(unit)")
            busy[unit] = false
            if let error {
                failed += 1
                uncertain[unit, default: []].append(generation)
                if errors.count < 8 { errors.append("\(error)") }
            } else {
                precondition(generation > acked[unit])
                acked[unit] = generation
                acknowledged += 1
            }
        }
    }

    private static func writer(_ device: some VerifyDevice, options: VerifyOptions, firstLBA: UInt64, ledger: LedgerBox,
                               deadline: ContinuousClock.Instant, clock: ContinuousClock) async throws {
        let blockSize = device.blockSize
        let unitBlocks = options.blocksPerWrite
        while clock.now < deadline {
            try Task.checkCancellation()
            guard let (unit, generation) = ledger.withLock({ $0.next(pattern: options.pattern, maxWrites: options.maxWrites) }) else { return }
            let lba = firstLBA + UInt64(unit * unitBlocks)
            let data = VerifyBlock.make(seed: options.seed, lba: lba, count: unitBlocks, generation: generation, blockSize: blockSize)
            var failure: (any Error)?
            do {
                try await device.write(lba: lba, data: data, fua: options.fua)
            } catch is CancellationError {
                failure = CancellationError()
            } catch {
                failure = error
            }
            ledger.withLock { $0.finished(unit: unit, generation: generation, error: failure) }
            if failure is CancellationError { throw CancellationError() }
            if failure != nil {
                // Every path is down for now: don't spin; the run goes on.
                try await Task.sleep(for: .milliseconds(100))
            }
        }
    }

    // MARK: Read-back

    private static func readBack(_ device: some VerifyDevice, options: VerifyOptions, firstLBA: UInt64, units: Int,
                                 ledger: Ledger, report: inout VerifyReport) async throws {
        let blockSize = device.blockSize
        let unitBlocks = options.blocksPerWrite
        // Whole units per read, about 128 KiB.
        let unitsPerRead = max(1, (128 * 1024 / blockSize) / unitBlocks)
        let chunks = stride(from: 0, to: units, by: unitsPerRead).map { ($0, min(unitsPerRead, units - $0)) }
        var problems: [VerifyProblem] = []
        var counts: [VerifyOutcome: Int] = [:]
        try await withThrowingTaskGroup(of: (Int, Result<ByteBuffer, any Error>).self) { group in
            var next = 0
            func launch() {
                guard next < chunks.count else { return }
                let (unit, count) = chunks[next]
                let index = next
                next += 1
                group.addTask {
                    let lba = firstLBA + UInt64(unit * unitBlocks)
                    do {
                        return (index, .success(try await device.read(lba: lba, blocks: UInt32(count * unitBlocks))))
                    } catch is CancellationError {
                        throw CancellationError()
                    } catch {
                        return (index, .failure(error))
                    }
                }
            }
            for _ in 0..<max(1, options.queueDepth) { launch() }
            while let (index, result) = try await group.next() {
                launch()
                let (firstUnit, count) = chunks[index]
                for u in firstUnit..<(firstUnit + count) {
                    for b in 0..<unitBlocks {
                        let lba = firstLBA + UInt64(u * unitBlocks + b)
                        let problem: VerifyProblem
                        switch result {
                        case .success(let data):
                            let offset = ((u - firstUnit) * unitBlocks + b) * blockSize
                            let block = data.getSlice(at: data.readerIndex + offset, length: blockSize)!
                            problem = classify(block, lba: lba, seed: options.seed, acked: ledger.acked[u], uncertain: ledger.uncertain[u] ?? [])
                        case .failure(let error):
                            problem = VerifyProblem(lba: lba, outcome: .unreadable, expectedGeneration: ledger.acked[u],
                                                    foundGeneration: nil, detail: "read failed: \(error)")
                        }
                        counts[problem.outcome, default: 0] += 1
                        if problem.isFailure { problems.append(problem) }
                    }
                }
            }
        }
        problems.sort { $0.lba < $1.lba }
        report.counts = counts
        report.problems = Array(problems.prefix(options.maxProblems))
    }

    /// Classifies one read-back block of `lba` given the last acknowledged generation and the
    /// generations whose writes failed (outcome unknown).
    ///
    /// A unit this run never wrote may hold anything from before the run (zeros, another run's
    /// blocks): it is `never-written` unless it holds a block of this run's seed stamped for
    /// another LBA (misdirected). Once a write was acknowledged, zeros or another run's block
    /// mean the write was lost.
    public static func classify(_ block: ByteBuffer, lba: UInt64, seed: UInt64, acked: UInt32, uncertain: [UInt32]) -> VerifyProblem {
        func result(_ outcome: VerifyOutcome, _ found: UInt32?, _ detail: String) -> VerifyProblem {
            VerifyProblem(lba: lba, outcome: outcome, expectedGeneration: acked, foundGeneration: found, detail: detail)
        }
        let content = VerifyBlock.decode(block)
        if case .stamp(seed, let stampLBA, let generation) = content, stampLBA != lba {
            return result(.corrupt, generation, "misdirected: the block of LBA \(stampLBA)")
        }
        if acked == 0 {
            if case .stamp(seed, _, let generation) = content, uncertain.contains(generation) {
                return result(.okInFlight, generation, "from a failed write")
            }
            let what: String
            switch content {
            case .zeros: what = "zeros"
            case .stamp(let other, _, let generation): what = "data from before the run (seed \(other), generation \(generation))"
            case .garbage: what = "data from before the run"
            }
            return uncertain.isEmpty ? result(.neverWritten, nil, what) : result(.okInFlight, nil, "\(what); failed writes never landed")
        }
        switch content {
        case .zeros:
            return result(.lost, nil, "zeros, but generation \(acked) was acknowledged")
        case .garbage(let why):
            return result(.corrupt, nil, why)
        case .stamp(let other, _, let generation) where other != seed:
            return result(.lost, nil, "data from before the run (seed \(other), generation \(generation))")
        case .stamp(_, _, let generation):
            if generation == acked {
                return result(uncertain.contains { $0 > acked } ? .okInFlight : .ok, generation, "acknowledged")
            }
            if generation > acked && uncertain.contains(generation) { return result(.okInFlight, generation, "from a failed write") }
            if generation < acked { return result(.lost, generation, "older than the acknowledged generation") }
            return result(.corrupt, generation, "generation \(generation) was never acknowledged nor in flight at a failure")
        }
    }
}

extension VerifyProblem {
    /// Lost, corrupt or unreadable: a failed check.
    public var isFailure: Bool { outcome == .lost || outcome == .corrupt || outcome == .unreadable }
}
