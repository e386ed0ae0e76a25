import ArgumentParser
import Foundation
import Histogram
import NIOCore
import NIOPosix
import NVMe
import NVMeHost

/// `halyard nvme perf`: a load generator modelled on spdk_nvme_perf. Keeps exactly `-q` I/Os in
/// flight, spread over the I/O queues; each completion submits the next I/O from the queue's event
/// loop (future callbacks, no Task per I/O); latency goes into one HdrHistogram per queue, merged
/// at the end.
struct NVMePerfCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "perf",
        abstract: "Measure IOPS, bandwidth and latency (like spdk_nvme_perf).",
        discussion: """
              halyard nvme perf -a 127.0.0.1 -s 4420 -n NQN -q 32 -o 4096 -w randread -t 10 [-M 70] [--json]
            -q is the total number of I/Os in flight, spread over the I/O queues (--nr-io-queues); \
            -o the I/O size in bytes (a multiple of the block size; 4K, 128K accepted). Random \
            offsets are aligned to the I/O size; sequential workloads give each queue its own \
            cursor. The --warmup seconds are not counted. Exits 1 after the report if any I/O failed. \
            Uses the first -a/-s path.
            """)

    enum Workload: String, ExpressibleByArgument, CaseIterable, Encodable {
        case randread, randwrite, read, write, randrw, rw

        var isRandom: Bool { self == .randread || self == .randwrite || self == .randrw }
        var isMixed: Bool { self == .randrw || self == .rw }
    }

    @OptionGroup var common: NVMeConnectionOptions

    @Option(name: [.customShort("q"), .customLong("io-depth")], help: "Total I/Os in flight (spread over the I/O queues).")
    var queueDepth: Int = 32

    @Option(name: [.customShort("o"), .customLong("io-size")], help: ArgumentHelp("I/O size in bytes (4096, 4K, 128K).", valueName: "BYTES"))
    var ioSize: String = "4096"

    @Option(name: [.customShort("w"), .customLong("io-pattern")],
            help: ArgumentHelp("Workload: randread, randwrite, read, write, randrw, rw.", valueName: "PATTERN"))
    var workload: Workload = .randread

    @Option(name: [.customShort("t"), .customLong("time")], help: ArgumentHelp("Measured run time in seconds.", valueName: "SECONDS"))
    var time: Double = 10

    @Option(name: [.customShort("M"), .customLong("rwmixread")], help: ArgumentHelp("Read percentage for randrw/rw (default 50).", valueName: "PERCENT"))
    var readPercent: Int?

    @Option(help: ArgumentHelp("Seconds of load before measuring (not counted).", valueName: "SECONDS"))
    var warmup: Double = 1

    @Option(help: ArgumentHelp("Working-set size from LBA 0 (default the whole namespace).", valueName: "BYTES"))
    var range: String?

    @Option(help: "Event loop threads (default: one per I/O queue, at most the core count).")
    var threads: Int?

    @Option(help: "Random seed (default: random).")
    var seed: UInt64?

    @Flag(help: "Print one JSON object.")
    var json = false

    func validate() throws {
        guard queueDepth >= 1, queueDepth <= 65536 else { throw ValidationError("-q must be 1-65536") }
        guard time > 0, time <= 86400 else { throw ValidationError("-t must be > 0 seconds") }
        guard warmup >= 0 else { throw ValidationError("--warmup must be ≥ 0") }
        if let readPercent {
            guard workload.isMixed else { throw ValidationError("-M applies to -w randrw or rw only") }
            guard (0...100).contains(readPercent) else { throw ValidationError("-M must be 0-100") }
        }
        if let threads { guard threads >= 1 else { throw ValidationError("--threads must be ≥ 1") } }
        _ = try SizeParser.parse(ioSize)
        if let range { _ = try SizeParser.parse(range) }
    }

    /// The report (text or JSON).
    struct Report: Encodable {
        var traddr: String
        var trsvcid: String
        var subnqn: String
        var nsid: UInt32
        var blockSize: Int
        var workload: Workload
        var ioSize: Int
        var queueDepth: Int
        var ioQueues: Int
        var threads: Int
        var readPercent: Int
        var timeS: Double
        var warmupS: Double
        var rangeBytes: UInt64
        var elapsedS: Double
        var ios: UInt64
        var reads: UInt64
        var writes: UInt64
        var iops: Double
        var readIOPS: Double
        var writeIOPS: Double
        var mibPerS: Double
        var latMeanUs: Double
        var latP50Us: Double
        var latP99Us: Double
        var latP999Us: Double
        var latMaxUs: Double
        var errors: UInt64
        var firstError: String?
        /// Process CPU time (user + system) during the measured window, per completed I/O.
        var cpuUsPerIO: Double

        enum CodingKeys: String, CodingKey {
            case traddr, trsvcid, subnqn, nsid, workload, threads, ios, reads, writes, iops, errors
            case blockSize = "block_size", ioSize = "io_size", queueDepth = "queue_depth", ioQueues = "io_queues"
            case readPercent = "read_percent", timeS = "time_s", warmupS = "warmup_s", rangeBytes = "range_bytes"
            case elapsedS = "elapsed_s", readIOPS = "read_iops", writeIOPS = "write_iops", mibPerS = "mib_per_s"
            case latMeanUs = "lat_mean_us", latP50Us = "lat_p50_us", latP99Us = "lat_p99_us", latP999Us = "lat_p99_9_us"
            case latMaxUs = "lat_max_us", firstError = "first_error", cpuUsPerIO = "cpu_us_per_io"
        }
    }

    func run() async throws {
        try await runNVMeCommand(logLevel: common.logLevel) {
            let nqn = try common.requireNQN()
            let path = common.paths(defaultPort: 4420)[0]
            if common.traddr.count > 1 { printWarning("perf drives the first path only (\(path))") }
            let size = Int(try SizeParser.parse(ioSize))
            let queuesWanted = common.ioQueues
            let perQueueWanted = (queueDepth + queuesWanted - 1) / queuesWanted
            var options = common.controllerOptions()
            options.ioQueueDepth = max(common.queueSize, perQueueWanted)
            let threadCount = threads ?? max(1, min(queuesWanted, System.coreCount))
            let session = try NVMeCLISession(common, threads: threadCount)
            let report = try await session.run { session in
                let c = try await session.connect(path, nqn: nqn, options: options)
                let (namespace, _) = try await NamespaceInfo.load(c, nsid: common.nsid)
                let bs = namespace.blockSize
                guard size >= bs, size % bs == 0 else {
                    throw CLIError("-o \(size) must be a multiple of the block size \(bs)")
                }
                guard size <= c.maxTransferSize else {
                    throw CLIError("-o \(size) exceeds the controller's maximum transfer size \(c.maxTransferSize)")
                }
                let rangeBytes = try range.map(SizeParser.parse) ?? namespace.sizeBytes
                guard rangeBytes <= namespace.sizeBytes else {
                    throw CLIError("--range \(rangeBytes) exceeds namespace \(namespace.nsid) (\(namespace.sizeBytes) bytes)")
                }
                let slots = rangeBytes / UInt64(size)
                guard slots >= 1 else { throw CLIError("--range \(rangeBytes) is smaller than one I/O of \(size) bytes") }
                let queues = c.ioQueues
                guard !queues.isEmpty else { throw CLIError("the controller granted no I/O queues") }
                // Spread -q over the granted queues.
                let depths = queues.indices.map { i in queueDepth / queues.count + (i < queueDepth % queues.count ? 1 : 0) }
                for (q, d) in zip(queues, depths) where d > q.depth {
                    throw CLIError("-q \(queueDepth) needs \(d) commands on a queue of \(q.depth) entries; use more --nr-io-queues or a larger --queue-size")
                }
                let readPercent: Int = switch workload {
                case .randread, .read: 100
                case .randwrite, .write: 0
                case .randrw, .rw: self.readPercent ?? 50
                }
                let plan = PerfPlan(nsid: namespace.nsid, blockSize: bs, ioSize: size, blocksPerIO: UInt32(size / bs),
                                    slots: slots, readPercent: readPercent, random: workload.isRandom,
                                    ioTimeout: c.options.ioTimeout)
                // One pre-filled buffer for every write (never modified, shared by all I/Os).
                var writeData = ByteBuffer()
                writeData.reserveCapacity(size)
                var x: UInt64 = 0x9E37_79B9_7F4A_7C15
                while writeData.readableBytes < size {
                    x ^= x << 13; x ^= x >> 7; x ^= x << 17
                    writeData.writeInteger(x)
                }
                let baseSeed = seed ?? UInt64.random(in: 1...UInt64.max)
                let warmupTime = TimeAmount.nanoseconds(Int64(warmup * 1e9))
                let runTime = TimeAmount.nanoseconds(Int64(time * 1e9))
                var futures: [EventLoopFuture<PerfResult>] = []
                let active = zip(queues, depths).filter { $0.1 > 0 }
                for (index, (queue, depth)) in active.enumerated() {
                    futures.append(PerfWorker.start(
                        queue: queue, depth: depth, plan: plan, index: index, workers: active.count,
                        seed: baseSeed &+ UInt64(index) &* 0x9E37_79B9_7F4A_7C15, writeData: writeData,
                        warmup: warmupTime, duration: runTime))
                }
                var total = PerfResult()
                for f in futures { total.merge(try await f.get()) }
                return Self.report(total, path: path, nqn: nqn, namespace: namespace, plan: plan, ioQueues: queues.count,
                                   threads: threadCount, rangeBytes: rangeBytes, workload: workload, queueDepth: queueDepth,
                                   time: time, warmup: warmup)
            }
            if json {
                try printJSON(report)
            } else {
                writeStdout(Self.text(report))
            }
            if report.errors > 0 {
                printError("\(report.errors) I/O error\(report.errors == 1 ? "" : "s"); first: \(report.firstError ?? "?")")
                throw ExitCode.failure
            }
        }
    }

    static func report(_ r: PerfResult, path: TransportAddress, nqn: String, namespace: NamespaceInfo, plan: PerfPlan,
                       ioQueues: Int, threads: Int, rangeBytes: UInt64, workload: Workload, queueDepth: Int,
                       time: Double, warmup: Double) -> Report {
        let elapsed = max(Double(r.measuredNanoseconds) / 1e9, 1e-9)
        func us(_ ns: UInt64) -> Double { (Double(ns) / 1000 * 100).rounded() / 100 }
        func round2(_ v: Double) -> Double { (v * 100).rounded() / 100 }
        let h = r.histogram
        let count = h.totalCount
        return Report(
            traddr: path.host, trsvcid: String(path.port), subnqn: nqn, nsid: namespace.nsid, blockSize: namespace.blockSize,
            workload: workload, ioSize: plan.ioSize, queueDepth: queueDepth, ioQueues: ioQueues, threads: threads,
            readPercent: plan.readPercent, timeS: time, warmupS: warmup, rangeBytes: rangeBytes,
            elapsedS: (elapsed * 1000).rounded() / 1000, ios: r.ios, reads: r.reads, writes: r.writes,
            iops: round2(Double(r.ios) / elapsed), readIOPS: round2(Double(r.reads) / elapsed),
            writeIOPS: round2(Double(r.writes) / elapsed),
            mibPerS: round2(Double(r.ios) * Double(plan.ioSize) / elapsed / 1_048_576),
            latMeanUs: count == 0 ? 0 : round2(Double(r.latencySumNanoseconds) / Double(r.ios) / 1000),
            latP50Us: count == 0 ? 0 : us(h.valueAtPercentile(50)),
            latP99Us: count == 0 ? 0 : us(h.valueAtPercentile(99)),
            latP999Us: count == 0 ? 0 : us(h.valueAtPercentile(99.9)),
            latMaxUs: us(r.maxNanoseconds), errors: r.errors, firstError: r.firstError,
            cpuUsPerIO: r.ios == 0 ? 0 : round2(Double(r.cpuNanoseconds) / Double(r.ios) / 1000))
    }

    static func text(_ r: Report) -> String {
        func col(_ s: String, _ w: Int) -> String { String(repeating: " ", count: max(0, w - s.count)) + s }
        func f(_ v: Double) -> String { String(format: "%.2f", v) }
        let path = TransportAddress(host: r.traddr, port: Int(r.trsvcid) ?? 0)
        var text = "halyard nvme perf: \(r.workload.rawValue)\(r.workload.isMixed ? " (\(r.readPercent)% reads)" : ""), "
        text += "\(r.ioSize) B I/Os, QD \(r.queueDepth) over \(r.ioQueues) I/O queue\(r.ioQueues == 1 ? "" : "s"), "
        text += "\(r.timeS) s after \(r.warmupS) s warmup, range \(r.rangeBytes) B, \(path) nsid \(r.nsid)\n"
        let heads = ["IOPS", "MiB/s", "mean µs", "p50 µs", "p99 µs", "p99.9 µs", "max µs", "errors", "CPU µs/IO"]
        let values = [f(r.iops), f(r.mibPerS), f(r.latMeanUs), f(r.latP50Us), f(r.latP99Us), f(r.latP999Us), f(r.latMaxUs), "\(r.errors)",
                      f(r.cpuUsPerIO)]
        let widths = zip(heads, values).map { max($0.count, $1.count) + 2 }
        text += zip(heads, widths).map { col($0, $1) }.joined() + "\n"
        text += zip(values, widths).map { col($0, $1) }.joined() + "\n"
        if r.workload.isMixed {
            text += "reads \(f(r.readIOPS)) IOPS, writes \(f(r.writeIOPS)) IOPS\n"
        }
        return text
    }
}

/// What every worker does: the same namespace, I/O size and mix.
struct PerfPlan: Sendable {
    var nsid: UInt32
    var blockSize: Int
    var ioSize: Int
    var blocksPerIO: UInt32
    /// I/O-size-aligned positions in the working set.
    var slots: UInt64
    var readPercent: Int
    var random: Bool
    var ioTimeout: TimeAmount
}

/// Counts and latencies of one worker (or all, merged).
struct PerfResult: Sendable {
    var histogram = Histogram<UInt64>(lowestDiscernibleValue: 1, highestTrackableValue: 100_000_000_000, numberOfSignificantValueDigits: .three)
    var ios: UInt64 = 0
    var reads: UInt64 = 0
    var writes: UInt64 = 0
    var latencySumNanoseconds: UInt64 = 0
    var maxNanoseconds: UInt64 = 0
    var errors: UInt64 = 0
    var firstError: String?
    var measuredNanoseconds: UInt64 = 0
    /// Process CPU time over the measured window (recorded by worker 0 only).
    var cpuNanoseconds: UInt64 = 0

    mutating func merge(_ other: PerfResult) {
        histogram.add(other.histogram)
        ios += other.ios
        reads += other.reads
        writes += other.writes
        latencySumNanoseconds += other.latencySumNanoseconds
        maxNanoseconds = max(maxNanoseconds, other.maxNanoseconds)
        errors += other.errors
        firstError = firstError ?? other.firstError
        measuredNanoseconds = max(measuredNanoseconds, other.measuredNanoseconds)
        cpuNanoseconds = max(cpuNanoseconds, other.cpuNanoseconds)
    }

    /// User + system CPU time of this process so far.
    static func processCPUNanoseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }
}

/// The I/Os of one queue. Lives on that queue's event loop: every method runs there, so its state
/// needs no lock. Each completion callback records the latency and submits the next I/O.
final class PerfWorker {
    enum Phase { case warmup, measuring, draining, finished }

    let queue: HostQueue
    let loop: any EventLoop
    let depth: Int
    let plan: PerfPlan
    let writeData: ByteBuffer
    let done: EventLoopPromise<PerfResult>
    var result = PerfResult()
    var phase = Phase.warmup
    var inflight = 0
    /// Slots no longer resubmitted after a transport failure (the queue is gone).
    var transportFailed = false
    var rng: UInt64
    var cursor: UInt64
    var measureStart: UInt64 = 0
    /// Worker 0 measures the process CPU time of the window.
    let measuresCPU: Bool
    var cpuStart: UInt64 = 0
    var scheduled: [Scheduled<Void>] = []

    private init(queue: HostQueue, depth: Int, plan: PerfPlan, index: Int, workers: Int, seed: UInt64, writeData: ByteBuffer) {
        self.queue = queue
        self.loop = queue.channel.eventLoop
        self.depth = depth
        self.plan = plan
        self.writeData = writeData
        self.done = loop.makePromise(of: PerfResult.self)
        self.rng = seed | 1
        self.measuresCPU = index == 0
        // Sequential workers start evenly spaced so they do not read the same blocks.
        self.cursor = plan.slots * UInt64(index) / UInt64(max(1, workers))
    }

    /// Starts a worker on `queue`'s event loop; the future completes when its I/Os have drained.
    static func start(queue: HostQueue, depth: Int, plan: PerfPlan, index: Int, workers: Int, seed: UInt64,
                      writeData: ByteBuffer, warmup: TimeAmount, duration: TimeAmount) -> EventLoopFuture<PerfResult> {
        queue.channel.eventLoop.flatSubmit {
            let worker = PerfWorker(queue: queue, depth: depth, plan: plan, index: index, workers: workers, seed: seed, writeData: writeData)
            worker.begin(warmup: warmup, duration: duration)
            return worker.done.futureResult
        }
    }

    private func begin(warmup: TimeAmount, duration: TimeAmount) {
        let me = NIOLoopBound(self, eventLoop: loop)
        if warmup.nanoseconds > 0 {
            scheduled.append(loop.scheduleTask(in: warmup) { me.value.startMeasuring() })
        } else {
            startMeasuring()
        }
        scheduled.append(loop.scheduleTask(in: warmup + duration) { me.value.stopMeasuring() })
        for _ in 0..<depth { submitNext() }
    }

    private func startMeasuring() {
        guard phase == .warmup else { return }
        let errors = result.errors
        let firstError = result.firstError
        result = PerfResult()
        result.errors = errors  // errors count over the whole run
        result.firstError = firstError
        measureStart = NIODeadline.now().uptimeNanoseconds
        if measuresCPU { cpuStart = PerfResult.processCPUNanoseconds() }
        phase = .measuring
    }

    private func stopMeasuring() {
        guard phase == .measuring || phase == .warmup else { return }
        if phase == .measuring {
            result.measuredNanoseconds = NIODeadline.now().uptimeNanoseconds - measureStart
            if measuresCPU { result.cpuNanoseconds = PerfResult.processCPUNanoseconds() - cpuStart }
        }
        phase = .draining
        if inflight == 0 { finish() }
    }

    private func finish() {
        guard phase != .finished else { return }
        phase = .finished
        for s in scheduled { s.cancel() }
        done.succeed(result)
    }

    @inline(__always)
    private func nextRandom() -> UInt64 {
        // xorshift64*
        rng ^= rng >> 12
        rng ^= rng << 25
        rng ^= rng >> 27
        return rng &* 2_685_821_657_736_338_717
    }

    private func submitNext() {
        let slot: UInt64
        if plan.random {
            slot = nextRandom() % plan.slots
        } else {
            slot = cursor
            cursor += 1
            if cursor == plan.slots { cursor = 0 }
        }
        let isRead = plan.readPercent == 100 || (plan.readPercent > 0 && Int(nextRandom() % 100) < plan.readPercent)
        let lba = slot &* UInt64(plan.blocksPerIO)
        inflight += 1
        let start = NIODeadline.now().uptimeNanoseconds
        let completion: CommandCompletionHandler = { [self] outcome in
            completed(outcome, isRead: isRead, lba: lba, start: start)
        }
        if isRead {
            queue.submitOnEventLoop(.read(nsid: plan.nsid, lba: lba, blocks: plan.blocksPerIO, blockSize: plan.blockSize),
                                    readLength: plan.ioSize, timeout: plan.ioTimeout, completion: completion)
        } else {
            queue.submitOnEventLoop(.write(nsid: plan.nsid, lba: lba, blocks: plan.blocksPerIO), data: writeData,
                                    timeout: plan.ioTimeout, completion: completion)
        }
    }

    private func completed(_ outcome: Result<CommandCompletion, any Error>, isRead: Bool, lba: UInt64, start: UInt64) {
        inflight -= 1
        switch outcome {
        case .success(let completion) where completion.entry.status.isSuccess:
            if phase == .measuring {
                let latency = NIODeadline.now().uptimeNanoseconds - start
                _ = result.histogram.record(latency)
                result.latencySumNanoseconds &+= latency
                result.maxNanoseconds = max(result.maxNanoseconds, latency)
                result.ios += 1
                if isRead { result.reads += 1 } else { result.writes += 1 }
            }
        case .success(let completion):
            result.errors += 1
            if result.firstError == nil {
                result.firstError = "\(isRead ? "read" : "write") at LBA \(lba): \(completion.entry.status)"
            }
        case .failure(let error):
            // A failed queue fails every later submission at once: stop resubmitting (that would
            // only spin) and let the other slots drain.
            result.errors += 1
            transportFailed = true
            if result.firstError == nil { result.firstError = "\(isRead ? "read" : "write") at LBA \(lba): \(describe(error))" }
        }
        switch phase {
        case .warmup, .measuring:
            if transportFailed {
                if inflight == 0 {
                    if phase == .measuring { result.measuredNanoseconds = NIODeadline.now().uptimeNanoseconds - measureStart }
                    finish()
                }
            } else {
                submitNext()
            }
        case .draining:
            if inflight == 0 { finish() }
        case .finished:
            break
        }
    }
}
