import NIOCore
import NVMe
@testable import NVMeTarget
import Storage
import Testing

/// The connect sequence the Linux host performs (research/nvme-tcp.md §2), over real loopback TCP.
@Suite("Target connect sequence")
struct ConnectSequenceTests {
    @Test("ICResp echoes digests, CPDA 0, MAXH2CDATA ≥ 4096 and aligned", arguments: [(false, false), (true, false), (false, true), (true, true)])
    func icResp(headerDigest: Bool, dataDigest: Bool) async throws {
        try await withTarget(try await .start()) { t in
            let q = try await TestQueue.open(port: t.ports[0], group: t.group)
            let resp = try await q.handshake(headerDigest: headerDigest, dataDigest: dataDigest)
            #expect(resp.headerDigest == headerDigest && resp.dataDigest == dataDigest)
            #expect(resp.controllerPDUDataAlignment == 0 && resp.pduFormatVersion == 0)
            #expect(resp.maxH2CData >= 4096 && resp.maxH2CData % 4 == 0)
            await q.close()
        }
    }

    @Test("admin bring-up: properties, Identify Controller as the Linux host needs it")
    func adminBringUp() async throws {
        try await withTarget(try await .start()) { t in
            let (q, cntlid) = try await t.connectAdmin()
            #expect((10...20).contains(cntlid))
            let cap = ControllerCapabilities(rawValue: try await q.getProperty(ControllerProperty.capabilities, eightBytes: true))
            #expect(cap.maxQueueEntries >= 128)
            #expect(cap.rawValue & (1 << 37) != 0, "CSS NVM")
            #expect(cap.rawValue & (1 << 43) == 0)
            #expect(try await q.getProperty(ControllerProperty.version) == 0x0001_0400)
            let (cqe, data) = try await q.execute(.identify(.controller))
            #expect(cqe.status == .success)
            var buffer = data
            let id = try IdentifyController(decoding: &buffer)
            #expect(id.cntlid == cntlid, "Identify CNTLID equals Connect's")
            #expect(id.subnqn == TargetFixture.nqn)
            #expect(id.cmic & 0x0B == 0x0B, "multi-port, multi-controller, ANA")
            #expect(id.mdts > 0 && id.kas > 0 && id.ioccsz >= 4 && id.iorcsz >= 1 && id.icdoff == 0)
            #expect(id.sgls & 0x3 == 1)
            #expect(id.oaes & (1 << 11) != 0)
            #expect(id.mnan != 0 && id.mnan <= id.nn)
            #expect(id.anagrpmax >= 1 && id.nanagrpid >= 1 && id.anacap & 0x1F == 0x1F)
            #expect(id.serialNumber == NamespaceIdentity.serialNumber(subsystemNQN: TargetFixture.nqn))
            // ANA log fits what the host allocates: 16 + 32·NANAGRPID + 4·MNAN within MDTS.
            let anaLogSize: Int = 16 + 32 * Int(id.nanagrpid) + 4 * Int(id.mnan)
            let maxTransfer: Int = 4096 << Int(id.mdts)
            #expect(anaLogSize <= maxTransfer)
            // Shutdown: CSTS.SHST = complete.
            #expect(try await q.setProperty(ControllerProperty.configuration, 0x0046_4001) == .success)
            let csts = ControllerStatus(rawValue: UInt32(try await q.getProperty(ControllerProperty.status)))
            #expect(csts.shutdownStatus == 2 && !csts.ready)
            await q.close()
        }
    }

    @Test("namespace identity: NMIC shared, ANA group, NGUID/UUID derived from NQN and NSID, same on both listeners")
    func namespaceIdentity() async throws {
        try await withTarget(try await .start(listeners: 2)) { t in
            var nguids: [NGUID] = []
            for listener in 0..<2 {
                let (q, _) = try await t.connectAdmin(listener: listener)
                let (c1, d1) = try await q.execute(.identify(.namespace, nsid: 1))
                #expect(c1.status == .success)
                var b1 = d1
                let ns = try IdentifyNamespace(decoding: &b1)
                #expect(ns.nmic & 1 == 1)
                #expect(ns.anagrpid == 1)
                #expect(ns.nsze == 131072 && ns.ncap == 131072)
                #expect(ns.lbaFormats.first?.lbaDataSizeShift == 9)
                let (c3, d3) = try await q.execute(.identify(.namespaceIdentificationDescriptors, nsid: 1))
                #expect(c3.status == .success)
                var b3 = d3
                let descs = try NamespaceIdentificationDescriptorList(decoding: &b3)
                let expected = NamespaceIdentity.derived(subsystemNQN: TargetFixture.nqn, namespaceID: 1)
                #expect(descs.nguid == expected.nguid && descs.uuid == expected.uuid && ns.nguid == expected.nguid)
                nguids.append(ns.nguid)
                let (c2, d2) = try await q.execute(.identify(.activeNamespaceList))
                #expect(c2.status == .success)
                var b2 = d2
                #expect(try ActiveNamespaceList(decoding: &b2).namespaceIDs == [1])
                // Inactive NSID: zeros and success; broadcast NSID: Invalid Namespace.
                let (c4, d4) = try await q.execute(.identify(.namespace, nsid: 7))
                #expect(c4.status == .success && d4.readableBytesView.allSatisfy { $0 == 0 })
                #expect(try await q.execute(.identify(.namespace, nsid: 0xFFFF_FFFF)).0.status == .invalidNamespace)
                // Unsupported CNS: Invalid Field.
                #expect(try await q.execute(SubmissionQueueEntry(opcode: 0x06, dataPointer: .transport(length: 4096), cdw10: 0x1F)).0.status == .invalidField)
                await q.close()
            }
            #expect(nguids[0] == nguids[1])
            #expect(NamespaceIdentity.derived(subsystemNQN: "nqn.other", namespaceID: 1).nguid != nguids[0])
        }
    }

    @Test("log pages: ANA (one optimized group), SMART, error, changed namespaces; LPO windows")
    func logPages() async throws {
        try await withTarget(try await .start()) { t in
            let (q, _) = try await t.connectAdmin()
            let (c, d) = try await q.execute(.getLogPage(LogPageIdentifier.ana.rawValue, length: 4096))
            #expect(c.status == .success && d.readableBytes == 4096)
            var b = d
            let ana = try ANALogPage(decoding: &b)
            #expect(ana.groups.count == 1 && ana.groups[0].anaGroupID == 1 && ana.groups[0].state == .optimized && ana.groups[0].namespaceIDs == [1])
            for lid: LogPageIdentifier in [.smart, .error, .changedNamespaces] {
                let (c2, d2) = try await q.execute(.getLogPage(lid.rawValue, length: 512))
                #expect(c2.status == .success && d2.readableBytes == 512, "\(lid)")
            }
            // Offset window of the ANA page: bytes 16.. of the page.
            let (c3, d3) = try await q.execute(.getLogPage(LogPageIdentifier.ana.rawValue, length: 8, offset: 16))
            #expect(c3.status == .success && d3.getInteger(at: 0, endianness: .little, as: UInt32.self) == 1)
            #expect(try await q.execute(.getLogPage(0x42, length: 512)).0.status == .invalidField)
            #expect(try await q.execute(.getLogPage(LogPageIdentifier.ana.rawValue, length: 8, offset: 2)).0.status == .invalidField)
            await q.close()
        }
    }

    @Test("features: Number of Queues, Async Event Config, Keep Alive Timer, Host Identifier")
    func features() async throws {
        try await withTarget(try await .start()) { t in
            let (q, _) = try await t.connectAdmin()
            let (nq, _) = try await q.execute(.setFeature(.numberOfQueues, 0x0001_0001))
            #expect(nq.status == .success && nq.dw0 == 0x0001_0001)
            #expect(try await q.execute(.setFeature(.numberOfQueues, 0xFFFF_FFFF)).0.status == .invalidField)
            #expect(try await q.execute(.setFeature(.asyncEventConfiguration, 1 << 11)).0.status == .success)
            #expect(try await q.execute(.setFeature(.asyncEventConfiguration, 1 << 20)).0.status == .invalidField)
            #expect(try await q.execute(.setFeature(.keepAliveTimer, 10_000)).0.status == .success)
            let get = SubmissionQueueEntry(opcode: AdminOpcode.getFeatures.rawValue, cdw10: UInt32(FeatureIdentifier.keepAliveTimer.rawValue))
            #expect(try await q.execute(get).0.dw0 == 10_000)
            #expect(try await q.execute(.setFeature(.hostIdentifier, 0)).0.status == .commandSequenceError)
            let hostID = SubmissionQueueEntry(opcode: AdminOpcode.getFeatures.rawValue, dataPointer: .transport(length: 16),
                                              cdw10: UInt32(FeatureIdentifier.hostIdentifier.rawValue), cdw11: 1)
            let (hc, hd) = try await q.execute(hostID)
            #expect(hc.status == .success && Array(hd.readableBytesView) == TestQueue.hostID)
            #expect(try await q.execute(.setFeature(.arbitration, 0)).0.status == .invalidField)
            // Keep Alive and Abort.
            #expect(try await q.execute(SubmissionQueueEntry(opcode: AdminOpcode.keepAlive.rawValue)).0.status == .success)
            #expect(try await q.execute(SubmissionQueueEntry(opcode: AdminOpcode.abort.rawValue)).0.dw0 == 1)
            await q.close()
        }
    }

    @Test("AERs are parked; more than AERL+1 get AER Limit Exceeded")
    func asyncEventRequests() async throws {
        try await withTarget(try await .start()) { t in
            let (q, _) = try await t.connectAdmin()
            for cid in UInt16(100)..<104 {
                try await q.submit(SubmissionQueueEntry(opcode: AdminOpcode.asyncEventRequest.rawValue, commandID: cid))
            }
            let (c, _) = try await q.execute(SubmissionQueueEntry(opcode: AdminOpcode.asyncEventRequest.rawValue))
            #expect(c.status == .asyncEventRequestLimitExceeded)
            // An ANA change event completes the oldest parked AER with 0x000C0302.
            #expect(try await q.execute(.setFeature(.asyncEventConfiguration, 1 << 11)).0.status == .success)
            let controller = try #require(t.target.subsystems[TargetFixture.nqn]?.controllers.first)
            controller.raiseAsyncEvent(AsyncEventCompletion.anaChange.dword, enableBit: 1 << 11)
            let (aen, _) = try await q.nextCompletion()
            #expect(aen.commandID == 100 && aen.dw0 == 0x000C_0302)
            await q.close()
        }
    }
}

/// Regression for a fuzzer find: a Get Log Page whose NUMD asks for gigabytes must be refused,
/// not built (it once made the target allocate NUMD bytes and trap above 4 GiB).
@Suite("Target log page bounds")
struct LogPageBoundsTests {
    @Test("NUMD beyond MDTS or different from the SGL length is refused; the target keeps serving")
    func hugeNUMD() async throws {
        try await withTarget(try await .start(discovery: true)) { t in
            let (q, _) = try await t.connectAdmin()
            var huge = SubmissionQueueEntry.getLogPage(LogPageIdentifier.smart.rawValue, length: 4096)
            huge.cdw10 |= 0xFFFF_0000
            huge.cdw11 = 0xFFFF
            #expect(try await q.execute(huge).0.status == .invalidField)
            var mismatch = SubmissionQueueEntry.getLogPage(LogPageIdentifier.smart.rawValue, length: 512)
            mismatch.dataPointer = .transport(length: 4096)
            #expect(try await q.execute(mismatch).0.status == .dataSGLLengthInvalid)
            #expect(try await q.execute(.getLogPage(LogPageIdentifier.smart.rawValue, length: 512)).0.status == .success)
            await q.close()
            let d = try await TestQueue.open(port: try #require(t.discoveryPort), group: t.group)
            _ = try await d.bringUpAdmin(subsystemNQN: Subsystem.discoveryNQN, kato: 0)
            var discoveryHuge = SubmissionQueueEntry.getLogPage(0x70, length: 4096, nsid: 0)
            discoveryHuge.cdw10 |= 0xFFFF_0000
            discoveryHuge.cdw11 = 0xFFFF
            #expect(try await d.execute(discoveryHuge).0.status == .invalidField)
            await d.close()
        }
    }
}
