import NIOCore
import NVMe
@testable import NVMeTarget
import Storage
import Testing

/// Keep-alive, teardown, controller IDs, discovery.
@Suite("Target controller lifecycle")
struct ControllerLifecycleTests {
    @Test("a controller whose keep-alive expires is torn down (after KATO plus the grace)")
    func keepAliveExpiry() async throws {
        var limits = TargetLimits()
        limits.keepAliveGrace = .milliseconds(1000)
        try await withTarget(try await .start(limits: limits)) { t in
            let (q, _) = try await t.connectAdmin(kato: 3000)
            let subsystem = try #require(t.target.subsystems[TargetFixture.nqn])
            #expect(subsystem.controllers.count == 1)
            // Keep-alives hold it up…
            // (Margins are wide: on a loaded 2-core machine a test task can wait a while to run.)
            let start = ContinuousClock.now
            while ContinuousClock.now - start < .seconds(5) {
                try await Task.sleep(for: .milliseconds(300))
                #expect(try await q.execute(SubmissionQueueEntry(opcode: AdminOpcode.keepAlive.rawValue)).0.status == .success)
            }
            // …silence ends it: the connection closes.
            let end = try await q.receive()
            #expect(end == nil)
            #expect(subsystem.controllers.isEmpty)
            await q.close()
        }
    }

    @Test("closing the admin queue tears down the controller and its I/O queues; the ID is freed")
    func teardownOnAdminClose() async throws {
        try await withTarget(try await .start()) { t in
            let (admin, io, cntlid) = try await t.connectIO()
            let subsystem = try #require(t.target.subsystems[TargetFixture.nqn])
            #expect(subsystem.controllers.map(\.id) == [cntlid])
            await admin.close()
            #expect(try await io.receive() == nil, "I/O queue closed with its controller")
            #expect(subsystem.controllers.isEmpty)
            await io.close()
        }
    }

    @Test("Fabrics Disconnect on an I/O queue closes that queue only")
    func fabricsDisconnect() async throws {
        try await withTarget(try await .start()) { t in
            let (admin, io, _) = try await t.connectIO()
            let disconnect = SubmissionQueueEntry(opcode: 0x7F, namespaceID: UInt32(FabricsCommandType.disconnect.rawValue))
            #expect(try await io.execute(disconnect).0.status == .success)
            #expect(try await io.receive() == nil)
            #expect(try await admin.execute(.identify(.controller)).0.status == .success)
            await io.close(); await admin.close()
        }
    }

    @Test("controller IDs are unique, inside the subsystem's range, and Busy when it is exhausted")
    func controllerIDRange() async throws {
        try await withTarget(try await .start()) { t in
            var queues: [TestQueue] = []
            var ids = Set<UInt16>()
            for _ in 10...20 {
                let (q, id) = try await t.connectAdmin()
                queues.append(q)
                ids.insert(id)
            }
            #expect(ids == Set(10...20))
            let extra = try await TestQueue.open(port: t.ports[0], group: t.group)
            _ = try await extra.handshake()
            #expect(try await extra.connect(queueID: 0, subsystemNQN: TargetFixture.nqn).status == .connectControllerBusy)
            await extra.close()
            for q in queues { await q.close() }
        }
    }

    @Test("discovery: log page lists the subsystem on every listener with the advertised address")
    func discovery() async throws {
        try await withTarget(try await .start(listeners: 2, discovery: true, advertise: "10.0.2.2")) { t in
            let q = try await TestQueue.open(port: try #require(t.discoveryPort), group: t.group)
            let cntlid = try await q.bringUpAdmin(subsystemNQN: Subsystem.discoveryNQN, kato: 0)
            let (ic, idata) = try await q.execute(.identify(.controller))
            var ib = idata
            let id = try IdentifyController(decoding: &ib)
            #expect(ic.status == .success && id.cntrltype == 2 && id.subnqn == Subsystem.discoveryNQN && id.cntlid == cntlid)
            // libnvme: header first, then entries at offset 1024, then the header again.
            let (hc, header) = try await q.execute(.getLogPage(0x70, length: 20, nsid: 0))
            #expect(hc.status == .success)
            let numrec = try #require(header.getInteger(at: 8, endianness: .little, as: UInt64.self))
            #expect(numrec == 2)
            let (ec, entries) = try await q.execute(.getLogPage(0x70, length: 2048, offset: 1024, nsid: 0))
            #expect(ec.status == .success)
            var all = ByteBuffer()
            var hdr = ByteBuffer(); hdr.writeZeros(1024)
            hdr.setInteger(numrec, at: 8, endianness: .little)
            all.writeBuffer(&hdr)
            var e = entries
            all.writeBuffer(&e)
            let page = try DiscoveryLogPage(decoding: &all)
            #expect(page.entries.map(\.transportServiceID).sorted() == t.ports.map(String.init).sorted())
            #expect(page.entries.allSatisfy { $0.transportAddress == "10.0.2.2" && $0.subsystemNQN == TargetFixture.nqn && $0.transportType.rawValue == 3 })
            // Discovery controllers have no I/O namespaces.
            #expect(try await q.execute(.identify(.namespace, nsid: 1)).0.status == .invalidField)
            await q.close()
            // The discovery listener serves the discovery subsystem only.
            let nvm = try await TestQueue.open(port: try #require(t.discoveryPort), group: t.group)
            _ = try await nvm.handshake()
            let refused = try await nvm.connect(queueID: 0, subsystemNQN: TargetFixture.nqn)
            #expect(refused.status == .connectInvalidParameters && refused.dw0 == 0x0001_0100)
            await nvm.close()
        }
    }
}
