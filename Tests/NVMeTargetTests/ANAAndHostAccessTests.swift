import Foundation
import Logging
import NIOCore
import NIOPosix
import NVMe
@testable import NVMeTarget
import Storage
import Testing

/// ANA per (group, listener) and host access, through real sockets: the ANA log page each path
/// reports, the ANA change event, the path statuses on I/O, per-listener counters, deny/allow with
/// disconnection, and the discovery log seen per host (NVMe base spec 2.0 §8.1.3, §5.16.1.12;
/// research/nvme-tcp.md §5–§6).
@Suite("ANA and host access")
struct ANAAndHostAccessTests {
    static let otherHost = "nqn.2014-08.org.nvmexpress:uuid:99999999-1111-2222-3333-444444444444"

    /// Two listeners; namespaces 1 and 3 in ANA group 1, namespace 2 in group 2.
    static func start(discovery: Bool = false, allowedHosts: Set<String>? = nil) async throws -> TargetFixture {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let namespaces = [(UInt32(3), UInt32(1)), (2, 2), (1, 1)].map { nsid, ana in
            NamespaceConfiguration(namespaceID: nsid, device: MemoryBlockDevice(blockSize: 512, blockCount: 8192), anaGroupID: ana)
        }
        let config = TargetConfiguration(
            listeners: (0..<2).map { _ in ListenerConfiguration(host: "127.0.0.1", port: 0) },
            discoveryListener: discovery ? ListenerConfiguration(host: "127.0.0.1", port: 0) : nil,
            subsystems: [SubsystemConfiguration(nqn: TargetFixture.nqn, controllerIDRange: 10...20, allowedHosts: allowedHosts, namespaces: namespaces)])
        var logger = Logger(label: "ana-test-target")
        logger.logLevel = ProcessInfo.processInfo.environment["HALYARD_TEST_LOG"] != nil ? .trace : .critical
        let target = NVMeTCPTarget(configuration: config, group: group, logger: logger)
        let bound = try await target.start().map { $0.port! }
        return TargetFixture(target: target, group: group, ports: Array(bound.prefix(2)), discoveryPort: discovery ? bound.last : nil)
    }

    static func listener(_ t: TargetFixture, _ index: Int) -> ListenerAddress {
        ListenerAddress(host: "127.0.0.1", port: t.ports[index])
    }

    /// Whether the target closed `q` (end of stream, or a reset).
    static func isClosed(_ q: TestQueue) async -> Bool {
        do { return try await q.receive() == nil } catch { return true }
    }

    static func anaLog(_ admin: TestQueue) async throws -> ANALogPage {
        let (cqe, data) = try await admin.execute(.getLogPage(LogPageIdentifier.ana.rawValue, length: 4096))
        try #require(cqe.status.isSuccess, "ANA log: \(cqe.status)")
        var page = data
        return try ANALogPage(decoding: &page)
    }

    /// Admin + one I/O queue on `listener` for `hostNQN` (AEC: ANA change enabled).
    static func connect(_ t: TargetFixture, listener: Int, hostNQN: String = TestQueue.hostNQN) async throws -> (admin: TestQueue, io: TestQueue, cntlid: UInt16) {
        let admin = try await TestQueue.open(port: t.ports[listener], group: t.group)
        let cntlid = try await admin.bringUpAdmin(subsystemNQN: TargetFixture.nqn, hostNQN: hostNQN, kato: 0)
        try #require(try await admin.execute(.setFeature(.numberOfQueues, 0x0001_0001)).0.status.isSuccess)
        try #require(try await admin.execute(.setFeature(.asyncEventConfiguration, 1 << 11)).0.status.isSuccess)
        let io = try await TestQueue.open(port: t.ports[listener], group: t.group)
        _ = try await io.handshake()
        let c = try await io.connect(queueID: 1, subsystemNQN: TargetFixture.nqn, hostNQN: hostNQN, controllerID: cntlid, queueSize: 32)
        try #require(c.status.isSuccess, "I/O connect: \(c.status)")
        return (admin, io, cntlid)
    }

    @Test("each path reports its own ANA state per group; one change count, in the header and every descriptor; NSIDs ascending; Identify agrees")
    func logPagePerListener() async throws {
        try await withTarget(try await Self.start()) { t in
            let (a0, _) = try await t.connectAdmin(listener: 0)
            let (a1, _) = try await t.connectAdmin(listener: 1)
            let before0 = try await Self.anaLog(a0), before1 = try await Self.anaLog(a1)
            #expect(before0 == before1)
            #expect(before0.groups.map(\.anaGroupID) == [1, 2])
            #expect(before0.groups.map(\.namespaceIDs) == [[1, 3], [2]])
            #expect(before0.groups.allSatisfy { $0.state == .optimized && $0.changeCount == before0.changeCount })

            // Identify: ANAGRPMAX/NANAGRPID cover the groups; each namespace reports its group.
            var idc = try await a0.execute(.identify(.controller)).1
            let controller = try IdentifyController(decoding: &idc)
            #expect(controller.cmic & 0x08 != 0 && controller.anacap & 0x1F == 0x1F)
            #expect(controller.anagrpmax >= 2 && controller.nanagrpid >= 2)
            for (nsid, group) in [(UInt32(1), UInt32(1)), (2, 2), (3, 1)] {
                var idn = try await a0.execute(.identify(.namespace, nsid: nsid)).1
                #expect(try IdentifyNamespace(decoding: &idn).anagrpid == group, "namespace \(nsid)")
            }

            let change = try await t.target.setANAState(subsystemNQN: TargetFixture.nqn, listener: Self.listener(t, 1), group: 1, state: .inaccessible)
            #expect(change.changed && change.changeCount == before0.changeCount + 1)
            let after0 = try await Self.anaLog(a0), after1 = try await Self.anaLog(a1)
            #expect(after0.changeCount == before0.changeCount + 1 && after1.changeCount == after0.changeCount)
            #expect(after0.groups.map(\.state) == [.optimized, .optimized], "path 0 unchanged")
            #expect(after1.groups.map(\.state) == [.inaccessible, .optimized], "path 1: group 1 inaccessible, group 2 untouched")
            #expect((after0.groups + after1.groups).allSatisfy { $0.changeCount == after0.changeCount })
            #expect(after1.groups.map(\.namespaceIDs) == [[1, 3], [2]])

            // Same state again: nothing changes.
            let again = try await t.target.setANAState(subsystemNQN: TargetFixture.nqn, listener: Self.listener(t, 1), group: 1, state: .inaccessible)
            #expect(!again.changed && again.changeCount == change.changeCount)
            // Every state round-trips through the log page; each change counts once.
            for (i, state) in [ANAState.nonOptimized, .persistentLoss, .change, .optimized].enumerated() {
                try await t.target.setANAState(subsystemNQN: TargetFixture.nqn, listener: Self.listener(t, 0), group: 2, state: state)
                let log = try await Self.anaLog(a0)
                #expect(log.groups[1].state == state && log.changeCount == change.changeCount + UInt64(i) + 1)
            }
            // RGO (LSP bit 0): groups only, no NSIDs.
            var rgo = SubmissionQueueEntry.getLogPage(LogPageIdentifier.ana.rawValue, length: 4096)
            rgo.cdw10 |= 1 << 8
            var rgoData = try await a1.execute(rgo).1
            let groupsOnly = try ANALogPage(decoding: &rgoData)
            #expect(groupsOnly.groups.count == 2 && groupsOnly.groups.allSatisfy { $0.namespaceIDs.isEmpty })
            await a0.close()
            await a1.close()
        }
    }

    @Test("control errors: unknown NQN, listener or group")
    func controlErrors() async throws {
        try await withTarget(try await Self.start()) { t in
            await #expect(throws: TargetControlError.self) {
                try await t.target.setANAState(subsystemNQN: "nqn.2026-11.io.halyard:nope", listener: Self.listener(t, 0), state: .inaccessible)
            }
            do {
                try await t.target.setANAState(subsystemNQN: TargetFixture.nqn, listener: ListenerAddress(host: "127.0.0.1", port: 1), state: .inaccessible)
                Issue.record("an unknown listener must be refused")
            } catch let error as TargetControlError {
                guard case .unknownListener(let address, let known) = error else { Issue.record("\(error)"); return }
                #expect(address == "127.0.0.1:1" && known.count == 2)
            }
            do {
                try await t.target.setANAState(subsystemNQN: TargetFixture.nqn, listener: Self.listener(t, 0), group: 7, state: .inaccessible)
                Issue.record("an unknown group must be refused")
            } catch let error as TargetControlError {
                #expect(error == .unknownANAGroup(7, subsystem: TargetFixture.nqn, known: [1, 2]))
            }
            do {
                try await t.target.updateHostAccess(subsystemNQN: TargetFixture.nqn, .removeAllowed(TestQueue.hostNQN))
                Issue.record("no allow list to remove from")
            } catch let error as TargetControlError {
                #expect(error == .hostAccess(.anyHostAllowed(TestQueue.hostNQN)))
            }
            await #expect(throws: TargetControlError.invalidHostNQN("")) {
                try await t.target.updateHostAccess(subsystemNQN: TargetFixture.nqn, .deny(""))
            }
            #expect(t.target.statistics().subsystems[0].anaChangeCount == 1, "refused requests change nothing")
        }
    }

    @Test("ANA change: the event reaches only controllers on that listener; I/O there gets 3/02, 3/01, 3/03 without DNR; admin works; the other path and the way back work; counters move only on the path used")
    func ioThroughPaths() async throws {
        try await withTarget(try await Self.start()) { t in
            let p0 = try await Self.connect(t, listener: 0)
            let p1 = try await Self.connect(t, listener: 1)
            // Park an AER on each controller.
            for admin in [p0.admin, p1.admin] {
                var aer = SubmissionQueueEntry(opcode: AdminOpcode.asyncEventRequest.rawValue)
                aer.commandID = 0x7000
                try await admin.submit(aer)
            }
            try await Task.sleep(for: .milliseconds(100))
            let data = pattern(4096, seed: 3)
            #expect(try await p0.io.execute(.write(lba: 0, blocks: 8), data: data).0.status == .success)
            #expect(try await p1.io.execute(.read(lba: 0, blocks: 8, blockSize: 512)).1 == data)
            let counters0 = t.target.statistics().listeners.map(\.io)
            #expect(counters0[0].writeCommands == 1 && counters0[0].writtenBytes == 4096 && counters0[0].readCommands == 0)
            #expect(counters0[1].readCommands == 1 && counters0[1].readBytes == 4096 && counters0[1].writeCommands == 0)

            try await t.target.setANAState(subsystemNQN: TargetFixture.nqn, listener: Self.listener(t, 1), group: 1, state: .inaccessible)
            // The AEN on path 1: Notice / ANA change / log page 0Ch.
            let (aen, _) = try await p1.admin.nextCompletion()
            #expect(aen.commandID == 0x7000 && aen.dw0 == 0x000C_0302 && aen.status.isSuccess)
            // Nothing on path 0: its next completion is the command sent now.
            let (id0, _) = try await p0.admin.execute(.identify(.controller))
            #expect(id0.commandID != 0x7000 && id0.status.isSuccess)

            for (state, status) in [(ANAState.inaccessible, NVMeStatus.anaInaccessible), (.persistentLoss, .anaPersistentLoss), (.change, .anaTransition)] {
                try await t.target.setANAState(subsystemNQN: TargetFixture.nqn, listener: Self.listener(t, 1), group: 1, state: state)
                let (r, _) = try await p1.io.execute(.read(lba: 0, blocks: 8, blockSize: 512))
                #expect(r.status == status, "\(state)")
                #expect(r.status.codeType == 3 && !r.status.doNotRetry, "path status, no DNR")
                let (w, _) = try await p1.io.execute(.write(nsid: 3, lba: 0, blocks: 1), data: pattern(512, seed: 1))
                #expect(w.status == status)
                // Namespace 2 (group 2) still works on this path; an unknown NSID is still Invalid Namespace.
                #expect(try await p1.io.execute(.read(nsid: 2, lba: 0, blocks: 1, blockSize: 512)).0.status == .success)
                #expect(try await p1.io.execute(.read(nsid: 9, lba: 0, blocks: 1, blockSize: 512)).0.status == .invalidNamespace)
                // Broadcast flush touches group 1 too.
                #expect(try await p1.io.execute(SubmissionQueueEntry(opcode: IOOpcode.flush.rawValue, namespaceID: 0xFFFF_FFFF)).0.status == status)
                // Admin commands are unaffected.
                #expect(try await p1.admin.execute(.identify(.namespace, nsid: 1)).0.status.isSuccess)
                // The other path works.
                #expect(try await p0.io.execute(.read(lba: 0, blocks: 8, blockSize: 512)).1 == data)
            }
            let during = t.target.statistics()
            #expect(during.listeners[1].io.readCommands == counters0[1].readCommands + 3, "only the namespace 2 reads count on path 1")
            #expect(during.listeners[1].io.writeCommands == 0, "refused writes are not counted")
            #expect(during.listeners[0].io.readCommands == 3)

            try await t.target.setANAState(subsystemNQN: TargetFixture.nqn, listener: Self.listener(t, 1), group: 1, state: .nonOptimized)
            #expect(try await p1.io.execute(.read(lba: 0, blocks: 8, blockSize: 512)).1 == data, "non-optimized executes")
            try await t.target.setANAState(subsystemNQN: TargetFixture.nqn, listener: Self.listener(t, 1), group: 1, state: .optimized)
            #expect(try await p1.io.execute(.write(lba: 8, blocks: 8), data: data).0.status == .success)
            let after = t.target.statistics()
            #expect(after.listeners[1].io.readCommands == counters0[1].readCommands + 4 /* 3× namespace 2, 1 non-optimized */)
            #expect(after.listeners[1].io.writeCommands == 1)
            let c1 = try #require(after.subsystems[0].controllers.first { $0.controllerID == p1.cntlid })
            #expect(c1.io == after.listeners[1].io && c1.ioQueues == 1 && c1.listener == Self.listener(t, 1).description)
            let paths = after.subsystems[0].anaGroups[0].paths
            #expect(paths.map(\.state) == ["optimized", "optimized"])

            // Counters survive the queue: closing path 1's I/O queue keeps its counts.
            await p1.io.close()
            try await Task.sleep(for: .milliseconds(100))
            #expect(t.target.statistics().listeners[1].io == after.listeners[1].io)
            for q in [p0.io, p0.admin, p1.admin] { await q.close() }
        }
    }

    @Test("deny a connected host: all its controllers (admin and I/O queues) are disconnected at once, reconnects are refused, other hosts are untouched; allow brings it back")
    func denyDisconnects() async throws {
        try await withTarget(try await Self.start()) { t in
            let a0 = try await Self.connect(t, listener: 0)
            let a1 = try await Self.connect(t, listener: 1)
            let b = try await Self.connect(t, listener: 0, hostNQN: Self.otherHost)
            #expect(t.target.subsystems[TargetFixture.nqn]!.controllers.count == 3)

            let update = try await t.target.updateHostAccess(subsystemNQN: TargetFixture.nqn, .deny(TestQueue.hostNQN))
            #expect(Set(update.disconnected.map(\.controllerID)) == [a0.cntlid, a1.cntlid])
            #expect(update.deniedHosts == [TestQueue.hostNQN] && update.allowedHosts == nil)
            // Every connection of the denied host is closed already.
            for q in [a0.admin, a0.io, a1.admin, a1.io] {
                #expect(await Self.isClosed(q), "connection closed")
            }
            #expect(t.target.subsystems[TargetFixture.nqn]!.controllers.map(\.id) == [b.cntlid])
            // The other host still does I/O.
            #expect(try await b.io.execute(.write(lba: 0, blocks: 1), data: pattern(512, seed: 2)).0.status == .success)
            // A new connect is refused with Connect Invalid Host.
            let again = try await TestQueue.open(port: t.ports[0], group: t.group)
            _ = try await again.handshake()
            let refused = try await again.connect(queueID: 0, subsystemNQN: TargetFixture.nqn)
            #expect(refused.status == .connectInvalidHost)
            await again.close()

            // Allow: taken off the deny list, connects again.
            let allowed = try await t.target.updateHostAccess(subsystemNQN: TargetFixture.nqn, .allow(TestQueue.hostNQN))
            #expect(allowed.deniedHosts.isEmpty && allowed.disconnected.isEmpty)
            let back = try await Self.connect(t, listener: 1)
            #expect(try await back.io.execute(.read(lba: 0, blocks: 1, blockSize: 512)).0.status == .success)
            for q in [back.io, back.admin, b.io, b.admin] { await q.close() }
        }
    }

    @Test("allow list: replacing it disconnects hosts left out; deny wins over allow; allow-any reopens")
    func allowList() async throws {
        try await withTarget(try await Self.start()) { t in
            let a = try await Self.connect(t, listener: 0)
            let b = try await Self.connect(t, listener: 1, hostNQN: Self.otherHost)
            let subsystem = try #require(t.target.subsystems[TargetFixture.nqn])
            // Only the other host: ours is disconnected.
            let update = try await t.target.updateHostAccess(subsystemNQN: TargetFixture.nqn, .replace(allowed: [Self.otherHost], denied: []))
            #expect(update.disconnected.map(\.controllerID) == [a.cntlid])
            #expect(await Self.isClosed(a.admin))
            #expect(await Self.isClosed(a.io))
            #expect(subsystem.isHostAllowed(Self.otherHost) && !subsystem.isHostAllowed(TestQueue.hostNQN))
            // Allow ours again (onto the list), then deny the other: deny wins even though it is listed.
            try await t.target.updateHostAccess(subsystemNQN: TargetFixture.nqn, .allow(TestQueue.hostNQN))
            #expect(subsystem.allowedHosts == [Self.otherHost, TestQueue.hostNQN])
            let denied = try await t.target.updateHostAccess(subsystemNQN: TargetFixture.nqn, .deny(Self.otherHost))
            #expect(denied.disconnected.map(\.controllerID) == [b.cntlid])
            #expect(!subsystem.isHostAllowed(Self.otherHost) && denied.allowedHosts == [Self.otherHost, TestQueue.hostNQN].sorted())
            // Remove ours from the list: refused now.
            try await t.target.updateHostAccess(subsystemNQN: TargetFixture.nqn, .removeAllowed(TestQueue.hostNQN))
            #expect(!subsystem.isHostAllowed(TestQueue.hostNQN))
            // Any host (except the denied one).
            try await t.target.updateHostAccess(subsystemNQN: TargetFixture.nqn, .allowAnyHost)
            #expect(subsystem.isHostAllowed(TestQueue.hostNQN) && !subsystem.isHostAllowed(Self.otherHost))
            // The library's setAllowedHosts keeps the deny list and tears down who lost access.
            let c = try await Self.connect(t, listener: 0)
            let removed = subsystem.setAllowedHosts(["nqn.2026-11.io.halyard:someone-else"])
            #expect(removed.map(\.id) == [c.cntlid] && removed.allSatisfy(\.isTornDown))
            #expect(subsystem.hostAccess.deniedHosts == [Self.otherHost])
            #expect(await Self.isClosed(c.admin))
            #expect(await Self.isClosed(c.io))
        }
    }

    @Test("discovery log lists a subsystem only to hosts that may use it; GENCTR changes when that changes; the discovery controller gets a log change event")
    func discoveryFiltered() async throws {
        try await withTarget(try await Self.start(discovery: true)) { t in
            func discover(_ q: TestQueue) async throws -> DiscoveryLogPage {
                let (cqe, data) = try await q.execute(.getLogPage(0x70, length: 4096, nsid: 0))
                try #require(cqe.status.isSuccess)
                var page = data
                return try DiscoveryLogPage(decoding: &page)
            }
            let port = try #require(t.discoveryPort)
            let ours = try await TestQueue.open(port: port, group: t.group)
            _ = try await ours.bringUpAdmin(subsystemNQN: Subsystem.discoveryNQN, kato: 0)
            #expect(try await ours.execute(.setFeature(.asyncEventConfiguration, 1 << 31)).0.status.isSuccess)
            let theirs = try await TestQueue.open(port: port, group: t.group)
            _ = try await theirs.bringUpAdmin(subsystemNQN: Subsystem.discoveryNQN, hostNQN: Self.otherHost, kato: 0)

            let before = try await discover(ours)
            #expect(before.entries.count == 2 && before.entries.allSatisfy { $0.subsystemNQN == TargetFixture.nqn })
            var aer = SubmissionQueueEntry(opcode: AdminOpcode.asyncEventRequest.rawValue)
            aer.commandID = 0x7001
            try await ours.submit(aer)
            try await Task.sleep(for: .milliseconds(100))

            try await t.target.updateHostAccess(subsystemNQN: TargetFixture.nqn, .deny(TestQueue.hostNQN))
            let (aen, _) = try await ours.nextCompletion()
            #expect(aen.commandID == 0x7001 && aen.dw0 == 0x0070_F002, "Discovery Log Page Change notice")
            let after = try await discover(ours)
            #expect(after.entries.isEmpty)
            #expect(after.generationCounter != before.generationCounter)
            let other = try await discover(theirs)
            #expect(other.entries.count == 2 && other.generationCounter == after.generationCounter)
            // A no-op change does not move GENCTR.
            try await t.target.updateHostAccess(subsystemNQN: TargetFixture.nqn, .deny(TestQueue.hostNQN))
            #expect(try await discover(theirs).generationCounter == after.generationCounter)
            await ours.close()
            await theirs.close()
        }
    }
}
