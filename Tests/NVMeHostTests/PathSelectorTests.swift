import NIOCore
import NVMe
import NVMeHost
import Testing

/// Path choice as a pure unit: fake paths in every ANA and session state.
@Suite("Path selection and failover disposition")
struct PathSelectorTests {
    static func live(_ ana: ANAState?, inFlight: Int = 0, pending: Bool = false) -> PathCandidate {
        PathCandidate(state: .live, anaState: ana, anaPending: pending, inFlight: inFlight)
    }

    static func pick(_ selector: inout PathSelector, _ paths: [PathCandidate], times: Int) -> [Int] {
        (0..<times).map { _ in
            guard case .path(let i) = selector.select(paths) else { return -1 }
            return i
        }
    }

    @Test("optimized paths are preferred; non-optimized only when no path is optimized", arguments: PathPolicy.allCases)
    func prefersOptimized(policy: PathPolicy) {
        var s = PathSelector(policy: policy)
        let paths = [Self.live(.nonOptimized), Self.live(.optimized), Self.live(.inaccessible), Self.live(.optimized)]
        let picks = Self.pick(&s, paths, times: 20)
        #expect(Set(picks) == [1, 3])
        var t = PathSelector(policy: policy)
        let noOptimized = [Self.live(.inaccessible), Self.live(.nonOptimized), Self.live(.change)]
        #expect(Set(Self.pick(&t, noOptimized, times: 10)) == [1])
    }

    @Test("inaccessible, persistent loss, change, ANA-pending and non-live paths are never chosen", arguments: PathPolicy.allCases)
    func neverUnusable(policy: PathPolicy) {
        var s = PathSelector(policy: policy)
        let paths = [
            Self.live(.inaccessible), Self.live(.persistentLoss), Self.live(.change), Self.live(.optimized, pending: true),
            PathCandidate(state: .connecting, anaState: .optimized), PathCandidate(state: .deleted, anaState: .optimized),
            Self.live(nil), Self.live(.nonOptimized),
        ]
        #expect(Set(Self.pick(&s, paths, times: 20)) == [7])
    }

    @Test("round-robin rotates among optimized paths")
    func roundRobin() {
        var s = PathSelector(policy: .roundRobin)
        let paths = [Self.live(.optimized), Self.live(.nonOptimized), Self.live(.optimized), Self.live(.optimized)]
        #expect(Self.pick(&s, paths, times: 7) == [0, 2, 3, 0, 2, 3, 0])
    }

    @Test("queue-depth picks the path with the fewest commands in flight, optimized first")
    func queueDepth() {
        var s = PathSelector(policy: .queueDepth)
        #expect(s.select([Self.live(.optimized, inFlight: 9), Self.live(.optimized, inFlight: 2), Self.live(.optimized, inFlight: 5)]) == .path(1))
        #expect(s.select([Self.live(.optimized, inFlight: 9), Self.live(.nonOptimized, inFlight: 0)]) == .path(0))
        #expect(s.select([Self.live(.inaccessible, inFlight: 0), Self.live(.nonOptimized, inFlight: 3), Self.live(.nonOptimized, inFlight: 1)]) == .path(2))
        // Ties share the load.
        let tied = [Self.live(.optimized, inFlight: 1), Self.live(.optimized, inFlight: 1)]
        #expect(Set(Self.pick(&s, tied, times: 4)) == [0, 1])
    }

    @Test("no usable path: wait while one may come back, fail when none can")
    func waitOrFail() {
        var s = PathSelector(policy: .roundRobin)
        #expect(s.select([PathCandidate(state: .connecting, anaState: .optimized), Self.live(.inaccessible)]) == .wait)
        #expect(s.select([PathCandidate(state: .connecting, fastFailed: true, anaState: .optimized), PathCandidate(state: .deleted, anaState: nil)]) == .fail)
        // A live path in transition or ANA-pending: wait for the ANA log to change.
        #expect(s.select([Self.live(.change)]) == .wait)
        #expect(s.select([Self.live(.optimized, pending: true)]) == .wait)
        // Persistent loss never comes back.
        #expect(s.select([Self.live(.persistentLoss)]) == .fail)
        #expect(s.select([]) == .fail)
    }

    @Test("failover disposition: path statuses and transport loss fail over; Reservation Conflict and others do not")
    func disposition() {
        #expect(FailoverDisposition.of(NVMeStatus.anaInaccessible) == .failover(rereadANA: true))
        #expect(FailoverDisposition.of(NVMeStatus.anaTransition) == .failover(rereadANA: true))
        #expect(FailoverDisposition.of(NVMeStatus.anaPersistentLoss) == .failover(rereadANA: true))
        #expect(FailoverDisposition.of(NVMeStatus.hostAbortedCommand) == .failover(rereadANA: true))
        #expect(FailoverDisposition.of(NVMeStatus.reservationConflict) == .complete)
        #expect(FailoverDisposition.of(NVMeStatus(codeType: 0, code: 0x83)) == .complete, "0x83 without DNR is still final")
        #expect(FailoverDisposition.of(NVMeStatus.lbaOutOfRange) == .complete)
        #expect(FailoverDisposition.of(NVMeStatus.success) == .complete)
        #expect(FailoverDisposition.of(NVMeHostError.transportClosed("reset")) == .failover(rereadANA: false))
        #expect(FailoverDisposition.of(NVMeHostError.timeout(commandID: 3)) == .failover(rereadANA: false))
        #expect(FailoverDisposition.of(NVMeHostError.status(.reservationConflict, commandID: 1)) == .complete)
        #expect(FailoverDisposition.of(NVMeHostError.status(.anaInaccessible, commandID: 1)) == .failover(rereadANA: true))
        #expect(FailoverDisposition.of(NVMeHostError.invalidArgument("x")) == .complete)
        #expect(FailoverDisposition.of(CancellationError()) == .complete)
    }
}

@Suite("Verify blocks and classification")
struct VerifyBlockTests {
    @Test("a stamped block decodes to its seed, LBA and generation", arguments: [512, 4096])
    func roundTrip(blockSize: Int) {
        let buffer = VerifyBlock.make(seed: 42, lba: 1000, count: 3, generation: 7, blockSize: blockSize)
        #expect(buffer.readableBytes == 3 * blockSize)
        for i in 0..<3 {
            let block = buffer.getSlice(at: i * blockSize, length: blockSize)!
            #expect(VerifyBlock.decode(block) == .stamp(seed: 42, lba: 1000 + UInt64(i), generation: 7))
        }
        // Different (seed, LBA, generation) → different fill.
        let a = VerifyBlock.make(seed: 42, lba: 1, count: 1, generation: 1, blockSize: blockSize)
        let b = VerifyBlock.make(seed: 42, lba: 1, count: 1, generation: 2, blockSize: blockSize)
        #expect(a.getBytes(at: 32, length: 64) != b.getBytes(at: 32, length: 64))
    }

    @Test("classification of every outcome")
    func classify() {
        func block(lba: UInt64, generation: UInt32, seed: UInt64 = 5) -> ByteBuffer {
            VerifyBlock.make(seed: seed, lba: lba, count: 1, generation: generation, blockSize: 512)
        }
        let zeros = ByteBuffer(repeating: 0, count: 512)
        #expect(Verify.classify(block(lba: 9, generation: 3), lba: 9, seed: 5, acked: 3, uncertain: []).outcome == .ok)
        #expect(Verify.classify(block(lba: 9, generation: 2), lba: 9, seed: 5, acked: 3, uncertain: []).outcome == .lost)
        #expect(Verify.classify(zeros, lba: 9, seed: 5, acked: 3, uncertain: []).outcome == .lost)
        #expect(Verify.classify(zeros, lba: 9, seed: 5, acked: 0, uncertain: []).outcome == .neverWritten)
        #expect(Verify.classify(zeros, lba: 9, seed: 5, acked: 0, uncertain: [1]).outcome == .okInFlight)
        // A failed write of generation 4 after generation 3 was acknowledged: either is fine.
        #expect(Verify.classify(block(lba: 9, generation: 4), lba: 9, seed: 5, acked: 3, uncertain: [4]).outcome == .okInFlight)
        #expect(Verify.classify(block(lba: 9, generation: 3), lba: 9, seed: 5, acked: 3, uncertain: [4]).outcome == .okInFlight)
        // …but an acknowledged write overwrote it: generation 4 reappearing means data went back in time.
        #expect(Verify.classify(block(lba: 9, generation: 4), lba: 9, seed: 5, acked: 5, uncertain: [4]).outcome == .lost)
        #expect(Verify.classify(block(lba: 9, generation: 6), lba: 9, seed: 5, acked: 5, uncertain: []).outcome == .corrupt)
        let misdirected = Verify.classify(block(lba: 8, generation: 3), lba: 9, seed: 5, acked: 3, uncertain: [])
        #expect(misdirected.outcome == .corrupt && misdirected.detail.contains("LBA 8"))
        // Another run's block: from before this run. Fine if never written, lost if a write was acknowledged.
        #expect(Verify.classify(block(lba: 9, generation: 3, seed: 6), lba: 9, seed: 5, acked: 3, uncertain: []).outcome == .lost)
        #expect(Verify.classify(block(lba: 9, generation: 3, seed: 6), lba: 9, seed: 5, acked: 0, uncertain: []).outcome == .neverWritten)
        #expect(Verify.classify(ByteBuffer(repeating: 0xAB, count: 512), lba: 9, seed: 5, acked: 0, uncertain: []).outcome == .neverWritten)
        #expect(Verify.classify(block(lba: 9, generation: 2), lba: 9, seed: 5, acked: 0, uncertain: [2]).outcome == .okInFlight)
        #expect(Verify.classify(block(lba: 8, generation: 1), lba: 9, seed: 5, acked: 0, uncertain: []).outcome == .corrupt)
        var flipped = block(lba: 9, generation: 3)
        flipped.setInteger(UInt8(0xFF), at: 300)
        #expect(Verify.classify(flipped, lba: 9, seed: 5, acked: 3, uncertain: []).outcome == .corrupt)
        #expect(Verify.classify(ByteBuffer(repeating: 0xAB, count: 512), lba: 9, seed: 5, acked: 3, uncertain: []).outcome == .corrupt)
    }
}
