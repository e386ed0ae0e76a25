@testable import Nexus
import Testing

@Suite("Rebuild limits, segment geometry and the token bucket")
struct RebuildLimitsTests {
    @Test("defaults: 1 MiB segments, 4 at once, no rate limit")
    func defaults() throws {
        let limits = try RebuildLimits()
        #expect(limits == RebuildLimits.default)
        #expect(limits.segmentBytes == 1 << 20)
        #expect(limits.concurrency == 4)
        #expect(limits.bytesPerSecond == nil)
    }

    @Test("rejects segment sizes that are not a power of two in 64 KiB...64 MiB, concurrency outside 1...64, rate 0")
    func validation() throws {
        for bytes in [64 << 10, 128 << 10, 1 << 20, 64 << 20] {
            #expect(try RebuildLimits(segmentBytes: bytes).segmentBytes == bytes)
        }
        for bytes in [0, -1, 4096, 32 << 10, (64 << 10) + 512, 3 << 20, 128 << 20] {
            #expect(throws: RebuildLimitsError.invalidSegmentBytes(bytes)) { try RebuildLimits(segmentBytes: bytes) }
        }
        #expect(try RebuildLimits(concurrency: 1).concurrency == 1)
        #expect(try RebuildLimits(concurrency: 64).concurrency == 64)
        for count in [0, -3, 65] {
            #expect(throws: RebuildLimitsError.invalidConcurrency(count)) { try RebuildLimits(concurrency: count) }
        }
        #expect(throws: RebuildLimitsError.invalidRate(0)) { try RebuildLimits(bytesPerSecond: 0) }
        #expect(try RebuildLimits(bytesPerSecond: 1).bytesPerSecond == 1)
        #expect("\(RebuildLimitsError.invalidConcurrency(65))".contains("1...64"))
    }

    @Test("segment geometry: counts, a short last segment, LBA ranges to segments")
    func geometry() {
        let geometry = SegmentGeometry(segmentBytes: 64 << 10, blockSize: 512, blockCount: 128 * 5 + 37)
        #expect(geometry.segmentBlocks == 128)
        #expect(geometry.segmentCount == 6)
        #expect(geometry.blocks(of: 0) == 0..<128)
        #expect(geometry.blocks(of: 4) == 512..<640)
        #expect(geometry.blocks(of: 5) == 640..<677)
        #expect(geometry.segments(lba: 0, blocks: 0) == nil)
        #expect(geometry.segments(lba: 0, blocks: 1) == 0...0)
        #expect(geometry.segments(lba: 127, blocks: 2) == 0...1)
        #expect(geometry.segments(lba: 128, blocks: 128) == 1...1)
        #expect(geometry.segments(lba: 100, blocks: 577) == 0...5)
        #expect(geometry.segments(blocks: 256..<257) == 2...2)
        #expect(SegmentGeometry(segmentBytes: 64 << 10, blockSize: 4096, blockCount: 0).segmentCount == 0)
        #expect(SegmentGeometry(segmentBytes: 64 << 10, blockSize: 4096, blockCount: 32).segmentCount == 2)
    }

    @Test("token bucket: a full bucket passes its capacity at once, then debt is paid at the rate")
    func bucketMath() {
        var bucket = TokenBucket(bytesPerSecond: 1000, capacity: 500, now: .zero)
        #expect(bucket.take(500, now: .zero) == .zero)
        #expect(bucket.take(500, now: .zero) == .milliseconds(500))
        #expect(bucket.take(1000, now: .zero) == .milliseconds(1500))
        // At 2 s the debt (1500) is paid and 500 refilled; the refill stops at the capacity.
        #expect(bucket.take(100, now: .seconds(2)) == .zero)
        #expect(bucket.tokens == 400)
        #expect(bucket.take(0, now: .seconds(100)) == .zero)
        #expect(bucket.tokens == 500)
        // A caller that read the clock before the last take waits for the books' time too.
        var late = TokenBucket(bytesPerSecond: 1000, capacity: 100, now: .zero)
        #expect(late.take(100, now: .seconds(1)) == .zero)
        #expect(late.take(50, now: .milliseconds(900)) == .milliseconds(100) + .milliseconds(50))
    }

    @Test("token bucket: bytes released by any time t never exceed capacity + rate*t, and the rate is reached")
    func bucketBound() {
        var generator = RebuildSplitMix(seed: 42)
        for trial in 0..<20 {
            let rate = UInt64(1 + generator.next() % 10_000_000)
            let capacity = UInt64(1 + generator.next() % 4_000_000)
            var bucket = TokenBucket(bytesPerSecond: rate, capacity: capacity, now: .zero)
            var now = Duration.zero
            var releases: [(at: Duration, bytes: UInt64)] = []
            var takes: [(at: Duration, bytes: UInt64)] = []
            var total: UInt64 = 0
            for _ in 0..<500 {
                now += .nanoseconds(Int64(generator.next() % 2_000_000))
                let bytes = 1 + generator.next() % 2_000_000
                releases.append((now + bucket.take(bytes, now: now), bytes))
                takes.append((now, bytes))
                total += bytes
            }
            releases.sort { $0.at < $1.at }
            var released: UInt64 = 0
            for release in releases {
                released += release.bytes
                let allowed = Double(capacity) + Double(rate) * TokenBucket.seconds(release.at)
                #expect(Double(released) <= allowed + 1, "trial \(trial): \(released) B released by \(release.at)")
            }
            // The last bytes go no earlier than the rate allows, and no later than a busy
            // period paying for the takes from some take on requires.
            let last = TokenBucket.seconds(releases.last!.at)
            #expect(last >= (Double(total) - Double(capacity)) / Double(rate) - 1e-6)
            var rest: UInt64 = 0
            var latest = 0.0
            for take in takes.reversed() {
                rest += take.bytes
                latest = max(latest, TokenBucket.seconds(take.at) + Double(rest) / Double(rate))
            }
            #expect(last <= latest + 1e-6)
        }
    }
}

/// A tiny deterministic generator for the property tests.
struct RebuildSplitMix: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
