import Foundation
import NIOCore
import NIOPosix
import NVMe
import NVMeHost
import NVMeTarget
@testable import Nexus
import Storage
import Testing

/// RemoteChild and LocalChild against a real NVMe/TCP target on loopback.
@Suite("ChildTests")
struct ChildTests {
    static let keyA: UInt64 = 0xA1A1_0000_0000_00A1
    static let keyB: UInt64 = 0xB2B2_0000_0000_00B2

    /// Write, read back, zeroes, deallocate, flush — and a transfer over MDTS, which is split.
    static func roundTrip(_ child: any ChildDevice, mdtsBlocks: Int) async throws {
        #expect(child.blockSize == 512)
        #expect(child.blockCount == 1 << 14)
        let small = childTestPattern(blocks: 8, seed: 1)
        try await child.write(lba: 16, data: small, fua: false)
        #expect(try await child.read(lba: 16, blocks: 8) == small)
        let bigBlocks = mdtsBlocks * 2 + 24
        let big = childTestPattern(blocks: bigBlocks, seed: 2)
        try await child.write(lba: 100, data: big, fua: true)
        #expect(try await child.read(lba: 100, blocks: UInt32(bigBlocks)) == big)
        #expect(try await child.read(lba: 100 + 8, blocks: 8) == big.getSlice(at: 8 * 512, length: 8 * 512))
        try await child.writeZeroes(lba: 100, blocks: 4, deallocate: false)
        try await child.deallocate(lba: 104, blocks: 4)
        let zeroed = try await child.read(lba: 100, blocks: 9)
        #expect(zeroed.getSlice(at: 0, length: 8 * 512)!.readableBytesView.allSatisfy { $0 == 0 })
        #expect(zeroed.getSlice(at: 8 * 512, length: 512) == big.getSlice(at: 8 * 512, length: 512))
        try await child.flush()
        // A request the nexus must never send.
        #expect(await childError { _ = try await child.read(lba: child.blockCount - 1, blocks: 2) }.map { error -> Bool in
            if case .invalidRequest = error { return true } else { return false }
        } == true)
        #expect(await childError { try await child.write(lba: 0, data: ByteBuffer(bytes: [1, 2, 3]), fua: false) }.map { error -> Bool in
            if case .invalidRequest = error { return true } else { return false }
        } == true)
    }

    @Test("remote child: read/write round trip, transfers over MDTS split")
    func remoteRoundTrip() async throws {
        var limits = TargetLimits()
        limits.maxDataTransferShift = 1  // 8 KiB: a 40-block write is 3 commands
        let t = try await ChildTestTarget.start(limits: limits)
        try await withChildCleanup({ await t.shutdown() }) {
            let child = try await t.remote(childTestIdentity())
            #expect(child.uri == t.uri)
            try await Self.roundTrip(child, mdtsBlocks: 16)
            await child.close()
            #expect(await childError { try await child.flush() } == .closed)
            await child.close()  // idempotent
        }
    }

    @Test("local child: read/write round trip through the namespace; the data is the replica's")
    func localRoundTrip() async throws {
        let t = try await ChildTestTarget.start()
        try await withChildCleanup({ await t.shutdown() }) {
            let identity = childTestIdentity()
            let local = try t.local(identity)
            try await Self.roundTrip(local, mdtsBlocks: 256)
            // The same blocks through NVMe/TCP.
            let remote = try await t.remote(childTestIdentity())
            #expect(try await remote.read(lba: 16, blocks: 8) == childTestPattern(blocks: 8, seed: 1))
            await remote.close()
            let recorder = ChildNoticeRecorder(local)
            await local.close()
            #expect(await childError { _ = try await local.read(lba: 0, blocks: 1) } == .closed)
            #expect(await recorder.wait { _ in recorder.isFinished }, "notices finish when the child closes")
        }
    }

    /// `first` holds Exclusive Access; a second nexus (a remote child) preempts and aborts it: the
    /// first child's next write and read are Reservation Conflicts, and it hears it was preempted.
    static func fenced(first: any ChildDevice, firstKey: UInt64, second: RemoteChild) async throws {
        let notices = ChildNoticeRecorder(first)
        try await first.register(key: firstKey)
        try await first.acquire(key: firstKey, type: .exclusiveAccess, preempting: nil)
        try await first.write(lba: 0, data: childTestPattern(blocks: 8, seed: 3), fua: false)
        let held = try await second.reservationReport()
        #expect(held.type == .exclusiveAccess)
        #expect(held.registrants.map(\.key) == [firstKey])
        #expect(held.registrants.first?.holdsReservation == true)

        try await second.register(key: keyB)
        #expect(await childError { try await second.write(lba: 0, data: childTestPattern(blocks: 8, seed: 4), fua: false) }
                == .reservationConflict, "a registrant that is not the holder is refused")
        try await second.acquire(key: keyB, type: .exclusiveAccess, preempting: firstKey)

        #expect(await childError { try await first.write(lba: 0, data: childTestPattern(blocks: 8, seed: 5), fua: false) }
                == .reservationConflict)
        #expect(await childError { _ = try await first.read(lba: 0, blocks: 8) } == .reservationConflict)
        #expect(await childError { try await first.flush() } == .reservationConflict)
        #expect(await notices.wait { $0.contains(.registrationPreempted) }, "got \(notices.notices)")

        let after = try await second.reservationReport()
        #expect(after.registrants.map(\.key) == [keyB])
        #expect(after.registrants.first?.holdsReservation == true)
        try await second.write(lba: 0, data: childTestPattern(blocks: 8, seed: 6), fua: false)
        #expect(try await second.read(lba: 0, blocks: 8) == childTestPattern(blocks: 8, seed: 6))
        // The fenced nexus may not release what it no longer holds; the new holder may.
        #expect(await childError { try await first.release(key: firstKey, type: .exclusiveAccess) } == .reservationConflict)
        try await second.release(key: keyB, type: .exclusiveAccess)
        #expect(try await first.reservationReport().type == nil)
    }

    @Test("remote child fenced: preempt-and-abort by another nexus → reservation conflict, registrationPreempted notice")
    func remoteFenced() async throws {
        let t = try await ChildTestTarget.start()
        try await withChildCleanup({ await t.shutdown() }) {
            let first = try await t.remote(childTestIdentity())
            let second = try await t.remote(childTestIdentity())
            try await Self.fenced(first: first, firstKey: Self.keyA, second: second)
            await first.close()
            await second.close()
        }
    }

    @Test("local child fenced: a remote nexus's preempt-and-abort fences the local nexus through the namespace gate")
    func localFenced() async throws {
        let t = try await ChildTestTarget.start()
        try await withChildCleanup({ await t.shutdown() }) {
            let first = try t.local(childTestIdentity())
            let second = try await t.remote(childTestIdentity())
            try await Self.fenced(first: first, firstKey: Self.keyA, second: second)
            await first.close()
            await second.close()
        }
    }

    @Test("local child: preempt-and-abort completes only after the local child's admitted write has drained")
    func localPreemptDrains() async throws {
        let device = ChildHeldWritesDevice()
        let t = try await ChildTestTarget.start(device: device)
        try await withChildCleanup({ device.open(); await t.shutdown() }) {
            let first = try t.local(childTestIdentity())
            let second = try await t.remote(childTestIdentity())
            try await first.register(key: Self.keyA)
            try await first.acquire(key: Self.keyA, type: .exclusiveAccess, preempting: nil)
            try await second.register(key: Self.keyB)
            let write = Task { await childError { try await first.write(lba: 0, data: childTestPattern(blocks: 8, seed: 7), fua: false) } }
            #expect(await ChildNoticeRecorder.poll { device.heldWrites == 1 })
            let preempt = Task { await childError { try await second.acquire(key: Self.keyB, type: .exclusiveAccess, preempting: Self.keyA) } }
            try await Task.sleep(for: .milliseconds(300))
            #expect(await childError { _ = try await first.read(lba: 0, blocks: 1) } == .reservationConflict,
                    "committed: new commands of the preempted host are refused at once")
            device.open()
            #expect(await write.value == nil, "admitted before the preempt: it completes")
            #expect(await preempt.value == nil)
            #expect(try await second.read(lba: 0, blocks: 8) == childTestPattern(blocks: 8, seed: 7))
            await first.close()
            await second.close()
        }
    }

    @Test("register replaces a key this nexus already holds (remote and local)")
    func registerReplaces() async throws {
        let t = try await ChildTestTarget.start()
        try await withChildCleanup({ await t.shutdown() }) {
            let identityA = childTestIdentity(), identityB = childTestIdentity()
            let remote = try await t.remote(identityA)
            let local = try t.local(identityB)
            for child in [remote, local] as [any ChildDevice] {
                try await child.register(key: 0x11)
                try await child.register(key: 0x11)
                try await child.register(key: 0x22)
            }
            let report = try await local.reservationReport()
            #expect(report.registrants.count == 2)
            #expect(report.registrants.map(\.key) == [0x22, 0x22])
            #expect(Set(report.registrants.map(\.hostID)) == [identityA.hostIdentifier, identityB.hostIdentifier])
            await remote.close()
            await local.close()
        }
    }

    @Test("killing the target: the remote child's next I/O fails unreachable and notices say the connection is lost")
    func remoteTargetKilled() async throws {
        let t = try await ChildTestTarget.start()
        try await withChildCleanup({ await t.shutdown() }) {
            let child = try await t.remote(childTestIdentity())
            let notices = ChildNoticeRecorder(child)
            try await child.write(lba: 0, data: childTestPattern(blocks: 8, seed: 8), fua: false)
            await t.stop()
            let error = await childError { _ = try await child.read(lba: 0, blocks: 8) }
            guard case .unreachable = error else {
                Issue.record("expected unreachable, got \(String(describing: error))")
                return
            }
            guard case .unreachable = await childError({ try await child.write(lba: 0, data: childTestPattern(blocks: 8, seed: 9), fua: false) }) else {
                Issue.record("a lost child stays unreachable")
                return
            }
            #expect(await notices.wait { $0.contains { if case .connectionLost = $0 { true } else { false } } })
            await child.close()
            #expect(await childError { try await child.flush() } == .closed)
        }
    }

    @Test("allocated ranges through log page C0h (single read, re-read whole, paged by MDTS); nil on a memory namespace")
    func allocatedRanges() async throws {
        var many: [Range<UInt64>] = []
        for i in 0..<UInt64(700) {
            let start: UInt64 = i * 20
            many.append(start..<start + i % 5 + 1)
        }
        let device = ChildRangesDevice(blockCount: 1 << 14, ranges: [0..<8, 64..<72])
        var small = TargetLimits()
        small.maxDataTransferShift = 1  // 8 KiB: the 700-range page (11 208 bytes) takes 2 reads after the first
        let paged = try await ChildTestTarget.start(device: device, limits: small)
        let whole = try await ChildTestTarget.start(device: device)
        let memory = try await ChildTestTarget.start()
        try await withChildCleanup({ await paged.shutdown(); await whole.shutdown(); await memory.shutdown() }) {
            let identity = childTestIdentity()
            let pagedRemote = try await paged.remote(identity)
            let wholeRemote = try await whole.remote(identity)
            let pagedLocal = try paged.local(identity)
            let children: [any ChildDevice] = [pagedRemote, wholeRemote, pagedLocal]
            for child in children {
                device.ranges.withLock { $0 = [0..<8, 64..<72] }
                #expect(try await child.allocatedRanges() == [0..<8, 64..<72], "\(child.uri)")
                device.ranges.withLock { $0 = many }
                #expect(try await child.allocatedRanges() == many, "\(child.uri)")
                device.ranges.withLock { $0 = [] }
                #expect(try await child.allocatedRanges() == [], "\(child.uri)")
            }
            let memoryRemote = try await memory.remote(identity)
            let memoryLocal = try memory.local(identity)
            let onMemory: [any ChildDevice] = [memoryRemote, memoryLocal]
            for child in onMemory {
                #expect(try await child.allocatedRanges() == nil, "\(child.uri)")
            }
            // The raw log page: LPO/NUMD windows, Invalid Log Page without a reporting device.
            let controller = wholeRemote.controller
            device.ranges.withLock { $0 = many }
            let window = try await controller.adminCommand(.getLogPage(0xC0, length: 32, offset: 8 + 16 * 10, nsid: 1), readLength: 32).data
            #expect(window == AllocatedRangesLogPage(ranges: many).encodeRange(offset: 8 + 16 * 10, length: 32))
            let memoryController = memoryRemote.controller
            let refused = try await memoryController.admin.submit(.getLogPage(0xC0, length: 4096, nsid: 1), readLength: 4096).get()
            #expect(refused.entry.status.codeType == 1 && refused.entry.status.code == 0x09, "Invalid Log Page")
            for child in children + onMemory { await child.close() }
        }
    }

    @Test("bad child URIs are invalid requests; IPv6 in brackets; nothing listening is unreachable")
    func uris() async throws {
        let ok = try ChildURI(parsing: "nvmf://10.0.0.7:4421/nqn.2026-11.io.halyard:replica:abc")
        #expect(ok == ChildURI(host: "10.0.0.7", port: 4421, subsystemNQN: "nqn.2026-11.io.halyard:replica:abc"))
        #expect(ok.description == "nvmf://10.0.0.7:4421/nqn.2026-11.io.halyard:replica:abc")
        let v6 = try ChildURI(parsing: "nvmf://[fe80::1]:4420/nqn.x")
        #expect(v6.host == "fe80::1" && v6.port == 4420 && v6.subsystemNQN == "nqn.x")
        #expect(v6.description == "nvmf://[fe80::1]:4420/nqn.x")
        #expect(try ChildURI(parsing: "nvmf://host.example/nqn.y").port == 4420)
        let bad = ["", "nvmf://", "http://1.2.3.4:4420/nqn.x", "nvmf://1.2.3.4:4420", "nvmf://1.2.3.4:4420/",
                   "nvmf://:4420/nqn.x", "nvmf://1.2.3.4:0/nqn.x", "nvmf://1.2.3.4:65536/nqn.x", "nvmf://1.2.3.4:44a0/nqn.x",
                   "nvmf://fe80::1:4420/nqn.x", "nvmf://[fe80::1/nqn.x", "nvmf://[fe80::1]x/nqn.x", "nvmf://1.2.3.4:4420/nqn x"]
        for uri in bad {
            #expect(throws: ChildIOError.self, "\(uri)") { try ChildURI(parsing: uri) }
            do {
                _ = try ChildURI(parsing: uri)
            } catch {
                guard case .invalidRequest(let why) = error else {
                    Issue.record("\(uri): \(error)")
                    continue
                }
                #expect(why.contains("bad child URI"))
            }
        }
        let t = try await ChildTestTarget.start()
        try await withChildCleanup({ await t.shutdown() }) {
            guard case .invalidRequest = await childError({ _ = try await RemoteChild.open(uri: "nvmf://127.0.0.1", identity: childTestIdentity(), options: t.options) }) else {
                Issue.record("remote open of a bad URI")
                return
            }
            guard case .invalidRequest = await childError({ _ = try LocalChild.open(namespace: t.namespace, uri: "bogus", hostID: .zero, eventLoop: t.group.next()) }) else {
                Issue.record("local open of a bad URI")
                return
            }
            // A port nothing listens on, and a subsystem the target does not serve.
            let closedPort = "nvmf://127.0.0.1:1/\(t.nqn)"
            guard case .unreachable = await childError({ _ = try await RemoteChild.open(uri: closedPort, identity: childTestIdentity(), options: t.options) }) else {
                Issue.record("connect refused should be unreachable")
                return
            }
            let unknown = "nvmf://127.0.0.1:\(t.port)/nqn.2026-11.io.halyard:replica:nope"
            guard case .unreachable = await childError({ _ = try await RemoteChild.open(uri: unknown, identity: childTestIdentity(), options: t.options) }) else {
                Issue.record("unknown subsystem should be unreachable")
                return
            }
        }
    }
}

extension ChildNoticeRecorder {
    /// Polls `condition` every 10 ms for up to `timeout`.
    static func poll(timeout: Duration = .seconds(10), _ condition: () -> Bool) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if condition() { return true }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return condition()
    }
}
