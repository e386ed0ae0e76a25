import Logging
import NIOCore
import NIOPosix
import NVMe
import NVMeHost
import NVMeTarget
import Storage
import Synchronization
import Testing

/// Our initiator's multipath device against the target's real ANA: an ANA change on one listener
/// (set through the target's library API) moves I/O off that path without an I/O error, and
/// back when the path is optimized again (research/nvme-tcp.md §6.4–§6.5).
@Suite("Multipath with target ANA changes")
struct ANAMultipathTests {
    static func listener(_ t: RestartableTarget, _ index: Int) -> ListenerAddress {
        ListenerAddress(host: "127.0.0.1", port: t.addresses[index].port)
    }

    static func listenerIO(_ t: RestartableTarget, _ index: Int) -> IOCounters {
        t.target?.statistics().listeners[index].io ?? IOCounters()
    }

    @Test("two paths under I/O: one listener set inaccessible → no I/O error, I/O continues on the other path, the inaccessible path's target counter stops; optimized again → used again")
    func inaccessibleAndBack() async throws {
        let t = try await RestartableTarget.start(listeners: 2)
        try await withCleanup({ await t.shutdown() }) {
            let target = try #require(t.target)
            let device = try await FailoverTests.connectDevice(t.addresses, group: t.group)
            #expect(device.paths.map(\.anaState) == [.optimized, .optimized])
            let stop = Flag()
            let done = Counter()
            let load = FailoverTests.readWriteLoad(device, stop: stop, done: done)
            #expect(await MP.eventually { device.paths.allSatisfy { $0.completed > 20 } }, "round-robin uses both paths")
            let busy = Self.listenerIO(t, 1)
            #expect(busy.readCommands > 0 && busy.writeCommands > 0, "the target counted I/O on listener 2")

            let change = try await target.setANAState(subsystemNQN: MP.nqn, listener: Self.listener(t, 1), state: .inaccessible)
            #expect(change.changed && change.controllersNotified == 1)
            #expect(await MP.eventually { device.paths[1].anaState == .inaccessible }, "the ANA change event re-read path 2's log")
            #expect(!device.paths[1].isUsable)
            // Let anything in flight on path 2 drain, then it must stay still while I/O goes on.
            try await Task.sleep(for: .milliseconds(200))
            let stalled = Self.listenerIO(t, 1)
            let doneBefore = done.value
            let survivorBefore = Self.listenerIO(t, 0)
            #expect(await MP.eventually { done.value > doneBefore + 200 }, "I/O continues on path 1")
            #expect(Self.listenerIO(t, 1) == stalled, "no I/O reaches the inaccessible listener")
            #expect(Self.listenerIO(t, 0).writeCommands > survivorBefore.writeCommands)

            try await target.setANAState(subsystemNQN: MP.nqn, listener: Self.listener(t, 1), state: .optimized)
            #expect(await MP.eventually { device.paths[1].anaState == .optimized && device.paths[1].isUsable })
            #expect(await MP.eventually { Self.listenerIO(t, 1).writeCommands > stalled.writeCommands + 20 }, "path 2 is used again")
            stop.set()
            try await load.value  // no I/O error, no mismatch
            await device.close()
        }
    }

    @Test("an I/O that meets the ANA Inaccessible status before the event arrives fails over and re-reads the log (no AEN: events disabled on the host)")
    func pathStatusWithoutEvent() async throws {
        let t = try await RestartableTarget.start(listeners: 2)
        try await withCleanup({ await t.shutdown() }) {
            let target = try #require(t.target)
            var options = MP.controllerOptions
            options.asyncEvents = 0  // no ANA change events: only the path status tells the host
            let device = try await MultipathDevice.connect(paths: t.addresses, subsystemNQN: MP.nqn, namespaceID: 1, identity: MP.identity,
                                                           options: options, sessionOptions: MP.sessionOptions(), policy: .roundRobin,
                                                           group: t.group, logger: MP.quietLogger)
            try await target.setANAState(subsystemNQN: MP.nqn, listener: Self.listener(t, 0), state: .persistentLoss)
            for i in 0..<20 {
                let data = MP.pattern(512, seed: UInt64(i))
                try await device.write(lba: UInt64(i), data: data)
                #expect(try await device.read(lba: UInt64(i), blocks: 1) == data)
            }
            #expect(await MP.eventually { device.paths[0].anaState == .persistentLoss })
            #expect(Self.listenerIO(t, 0).writeCommands == 0, "nothing executed on the persistent-loss path")
            await device.close()
        }
    }
}
