import Logging
import NIOCore
import NIOPosix
import NVMe
import NVMeHost
import NVMeTarget
import Storage
import Testing

/// Discovery: grouping, de-duplication and skipping of log entries (pure), referrals, and
/// connecting everything found against Halyard's own target.
@Suite("NVMeHost discovery")
struct DiscoveryTests {
    static let d1 = TransportAddress(host: "10.0.0.1", port: 8009)
    static let d2 = TransportAddress(host: "10.0.0.2", port: 8009)
    static let nqnA = "nqn.2026-11.io.halyard:a"
    static let nqnB = "nqn.2026-11.io.halyard:b"

    static func nvm(_ nqn: String, _ traddr: String, _ port: String = "4420", transport: DiscoveryLogEntry.TransportType = .tcp,
                    family: DiscoveryLogEntry.AddressFamily = .ipv4) -> DiscoveryLogEntry {
        DiscoveryLogEntry(transportType: transport, addressFamily: family, subsystemType: .nvmSubsystem,
                          transportServiceID: port, subsystemNQN: nqn, transportAddress: traddr)
    }

    static func referral(_ address: TransportAddress) -> DiscoveryLogEntry {
        DiscoveryLogEntry(subsystemType: .referral, transportServiceID: String(address.port),
                          subsystemNQN: NVMeDiscovery.discoveryNQN, transportAddress: address.host)
    }

    @Test("NVM subsystem entries are grouped by NQN; duplicates merged; other entries skipped with their reason")
    func grouping() {
        var tls = Self.nvm(Self.nqnB, "10.0.0.9")
        tls.tcpSecurityType = 2
        let current = DiscoveryLogEntry(subsystemType: .currentDiscoverySubsystem, transportServiceID: "8009",
                                        subsystemNQN: NVMeDiscovery.discoveryNQN, transportAddress: "10.0.0.1")
        let unknownType = DiscoveryLogEntry(subsystemType: .init(rawValue: 9), transportServiceID: "4420", subsystemNQN: Self.nqnB,
                                            transportAddress: "10.0.0.9")
        let page1 = DiscoveryLogPage(generationCounter: 4, entries: [
            current,
            Self.nvm(Self.nqnA, "10.0.0.5"),
            Self.nvm(Self.nqnB, "fd00::7", family: .ipv6),
            Self.nvm(Self.nqnA, "10.0.0.6", "4421"),
            Self.nvm(Self.nqnB, "10.0.0.8", transport: .rdma),
            Self.nvm(Self.nqnB, "10.0.0.8", family: .fibreChannel),
            tls,
            Self.nvm(Self.nqnA, "10.0.0.5", "http"),
            unknownType,
            Self.nvm(Self.nqnA, "10.0.0.5"),  // the same path twice on one page
        ])
        var report = DiscoveryReport()
        let referrals = report.add(page1, from: Self.d1)
        #expect(referrals.isEmpty)
        // The same path again from another discovery controller, and a new one.
        report.add(DiscoveryLogPage(entries: [Self.nvm(Self.nqnA, "10.0.0.6", "4421"), Self.nvm(Self.nqnA, "10.0.0.7")]), from: Self.d2)

        #expect(report.subsystems.map(\.nqn) == [Self.nqnA, Self.nqnB])
        #expect(report.subsystems[0].addresses == [TransportAddress(host: "10.0.0.5", port: 4420), TransportAddress(host: "10.0.0.6", port: 4421),
                                                   TransportAddress(host: "10.0.0.7", port: 4420)])
        #expect(report.subsystems[0].paths.map(\.sources) == [[Self.d1], [Self.d1, Self.d2], [Self.d2]])
        #expect(report.subsystems[1].addresses == [TransportAddress(host: "fd00::7", port: 4420)])
        #expect(report.subsystems[1].addresses.first?.description == "[fd00::7]:4420")

        let reasons = report.skipped.map(\.reason)
        #expect(reasons == [
            "the current discovery subsystem (the controller that answered)",
            "transport rdma is not supported (only tcp)",
            "address family fibre-channel is not supported (only ipv4, ipv6)",
            "requires a secure channel (TLS), which is not supported",
            "TRSVCID 'http' is not a TCP port",
            "unrecognized subsystem type 9",
        ])
        #expect(report.skipped.allSatisfy { $0.source == Self.d1 })
        #expect(report.skipped[0].entry == current && report.skipped[3].entry == tls)
        #expect(report.controllers.map(\.address) == [Self.d1, Self.d2])
        #expect(report.controllers.map(\.recordCount) == [10, 2] && report.controllers.first?.generationCounter == 4)
        #expect(report.failures.isEmpty)
    }

    @Test("--use-discovery-address: every path goes to the discovery controller's host, keeping its port")
    func useDiscoveryAddress() {
        let local = TransportAddress(host: "127.0.0.1", port: 8009)
        let page = DiscoveryLogPage(entries: [
            Self.nvm(Self.nqnA, "10.0.2.2", "4420"), Self.nvm(Self.nqnA, "10.0.2.2", "4421"),
            Self.nvm(Self.nqnA, "192.168.1.5", "4420"),  // the same address once remapped: one path
        ])
        var plain = DiscoveryReport()
        plain.add(page, from: local)
        #expect(plain.subsystems.first?.addresses.map(\.description) == ["10.0.2.2:4420", "10.0.2.2:4421", "192.168.1.5:4420"])
        var remapped = DiscoveryReport()
        remapped.add(page, from: local, options: DiscoveryOptions(useDiscoveryAddress: true))
        #expect(remapped.subsystems.first?.addresses.map(\.description) == ["127.0.0.1:4420", "127.0.0.1:4421"])
        #expect(remapped.subsystems.first?.paths.first?.entry.transportAddress == "10.0.2.2", "the entry is kept as listed")
    }

    @Test("referrals are followed one level deep; deeper ones and cycles are skipped")
    func referrals() {
        let d3 = TransportAddress(host: "10.0.0.3", port: 8009)
        var report = DiscoveryReport()
        let first = report.add(DiscoveryLogPage(entries: [Self.referral(Self.d2), Self.referral(Self.d1), Self.nvm(Self.nqnA, "10.0.0.5")]),
                               from: Self.d1)
        #expect(first == [DiscoveryReferral(address: Self.d2, subsystemNQN: NVMeDiscovery.discoveryNQN, referredBy: Self.d1)])
        #expect(report.skipped.map(\.reason) == ["referral to a discovery controller already asked"])
        let second = report.add(DiscoveryLogPage(entries: [Self.referral(d3), Self.nvm(Self.nqnA, "10.0.0.6")]), from: Self.d2, referredBy: Self.d1)
        #expect(second.isEmpty)
        #expect(report.skipped.last?.reason == "referral from a referred discovery controller (only one level is followed)")
        #expect(report.subsystems.first?.addresses.map(\.host) == ["10.0.0.5", "10.0.0.6"])
        #expect(report.controllers.map(\.referredBy) == [nil, Self.d1])

        var off = DiscoveryReport()
        #expect(off.add(DiscoveryLogPage(entries: [Self.referral(Self.d2)]), from: Self.d1,
                        options: DiscoveryOptions(followReferrals: false)).isEmpty)
        #expect(off.skipped.map(\.reason) == ["referrals are not followed"])
    }

    @Test("discover + connectAll against a target: the subsystem on both listeners as one multipath device; a path to a closed port fails alone")
    func connectAll() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let config = TargetConfiguration(
            listeners: [ListenerConfiguration(host: "127.0.0.1", port: 0), ListenerConfiguration(host: "127.0.0.1", port: 0)],
            discoveryListener: ListenerConfiguration(host: "127.0.0.1", port: 0),
            subsystems: [SubsystemConfiguration(nqn: Self.nqnA, namespaces: [NamespaceConfiguration(device: MemoryBlockDevice(blockSize: 512, blockCount: 1 << 14))])])
        let target = NVMeTCPTarget(configuration: config, group: group, logger: MP.quietLogger)
        let bound = try await target.start()
        let ports = [bound[0].port!, bound[1].port!]
        let discovery = TransportAddress(host: "127.0.0.1", port: bound[2].port!)
        var connections: [SubsystemConnection] = []
        do {
            let options = DiscoveryOptions(controller: MP.controllerOptions)
            var report = await NVMeDiscovery.discover([discovery], identity: MP.identity, options: options, group: group, logger: MP.quietLogger)
            #expect(report.failures.isEmpty)
            #expect(report.subsystems.map(\.nqn) == [Self.nqnA])
            #expect(report.subsystems.first?.addresses == ports.map { TransportAddress(host: "127.0.0.1", port: $0) })
            // Another discovery controller lists subsystem B at a port nobody listens on.
            report.add(DiscoveryLogPage(entries: [Self.nvm(Self.nqnB, "127.0.0.1", "1")]), from: TransportAddress(host: "127.0.0.1", port: 8009))

            connections = await SubsystemConnection.connectAll(report.subsystems, identity: MP.identity, options: MP.controllerOptions,
                                                               sessionOptions: MP.sessionOptions(), group: group, logger: MP.quietLogger)
            #expect(connections.map(\.subsystemNQN) == [Self.nqnA, Self.nqnB])
            let a = connections[0], b = connections[1]
            #expect(a.errors.isEmpty, "\(a.errors)")
            #expect(a.connectedPaths.count == 2)
            #expect(a.paths.allSatisfy { $0.anaLog?.groups.first?.state == .optimized })
            #expect(a.namespaces.map(\.nsid) == [1])
            let device = try #require(a.namespaces.first?.device)
            #expect(device.paths.map(\.address.port) == ports)
            #expect(device.paths.allSatisfy { $0.isUsable && $0.anaState == .optimized }, "\(device.paths)")
            try await device.write(lba: 3, data: MP.pattern(1024, seed: 5))
            #expect(try await device.read(lba: 3, blocks: 2) == MP.pattern(1024, seed: 5))

            #expect(b.connectedPaths.isEmpty && b.namespaces.isEmpty)
            let error = try #require(b.errors.first)
            #expect(b.errors.count == 1)
            #expect(error.address == TransportAddress(host: "127.0.0.1", port: 1))
            #expect(error.summary == "connect to 127.0.0.1:1 failed")
        } catch {
            for c in connections { await c.close() }
            await target.stop()
            try? await group.shutdownGracefully()
            throw error
        }
        for c in connections { await c.close() }
        #expect(await MP.eventually { target.subsystems[Self.nqnA]?.controllers.isEmpty == true }, "every controller shut down")
        await target.stop()
        try? await group.shutdownGracefully()
    }
}
