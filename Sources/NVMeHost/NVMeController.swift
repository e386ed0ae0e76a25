import Logging
import NIOCore
import NVMe
import Synchronization

/// How a host controller connects (nvme-cli `connect` options, research/nvme-tcp.md §2 and §9).
public struct ControllerOptions: Sendable {
    public var headerDigest = false
    public var dataDigest = false
    /// Number of I/O queues asked for (the target may grant fewer).
    public var ioQueueCount = 2
    /// Entries per I/O queue (clamped to the target's CAP.MQES + 1).
    public var ioQueueDepth = 128
    /// Keep Alive Timeout sent in Connect; keep-alives go every KATO/2. 0 disables.
    public var keepAliveTimeout: TimeAmount = .seconds(5)
    /// Timeout of each admin command.
    public var adminTimeout: TimeAmount = .seconds(60)
    /// Timeout of each I/O command.
    public var ioTimeout: TimeAmount = .seconds(30)
    /// TCP connect + ICResp timeout per queue.
    public var connectTimeout: TimeAmount = .seconds(10)
    /// Asynchronous event kinds to enable (AEC): namespace attribute and ANA change by default.
    public var asyncEvents: UInt32 = (1 << 8) | (1 << 11)
    /// Ask for SQ flow control to be disabled on I/O queues (Connect CATTR b2, like nvme-cli's
    /// `--disable-sqflow`). The host never has more commands outstanding than the queue holds
    /// anyway; the target may then complete a read with its last C2HData's SUCCESS flag instead
    /// of a separate CapsuleResp (NVMe/TCP transport spec 1.0 §3.6.2.7).
    public var disableSQFlowControl = true
    /// When set, I/O queue *i* (1-based) runs on `ioQueueEventLoops[(i - 1) % count]` instead of
    /// the group's next loop: one queue per loop, as Linux keeps one per CPU, so a caller can
    /// submit on the queue of the loop it runs on without a thread hop.
    public var ioQueueEventLoops: [any EventLoop]?

    public init() {}
}

/// A host's controller on one NVMe/TCP target (one path): the admin queue, its I/O queues, the
/// keep-alive timer and one outstanding Asynchronous Event Request, brought up in the order the
/// Linux host uses (research/nvme-tcp.md §2; NVMe over Fabrics spec 1.1 §3).
public final class NVMeController: Sendable {
    public let address: TransportAddress
    public let subsystemNQN: String
    public let identity: HostIdentity
    public let options: ControllerOptions
    public let controllerID: UInt16
    public let identify: IdentifyController
    public let capabilities: ControllerCapabilities
    public let admin: HostQueue
    public let ioQueues: [HostQueue]
    let logger: Logger
    private let nextQueue = Atomic<Int>(0)
    private let keepAlive: Mutex<RepeatedTask?> = Mutex(nil)
    private let events: AsyncStream<UInt32>.Continuation
    /// Asynchronous events the target reported (AER completion DW0, e.g. 0x000C0302 ANA change).
    public let asyncEvents: AsyncStream<UInt32>

    private init(address: TransportAddress, subsystemNQN: String, identity: HostIdentity, options: ControllerOptions,
                 controllerID: UInt16, identify: IdentifyController, capabilities: ControllerCapabilities,
                 admin: HostQueue, ioQueues: [HostQueue], logger: Logger) {
        self.address = address
        self.subsystemNQN = subsystemNQN
        self.identity = identity
        self.options = options
        self.controllerID = controllerID
        self.identify = identify
        self.capabilities = capabilities
        self.admin = admin
        self.ioQueues = ioQueues
        self.logger = logger
        (asyncEvents, events) = AsyncStream.makeStream(of: UInt32.self, bufferingPolicy: .bufferingNewest(64))
    }

    public var isDiscovery: Bool { identify.cntrltype == 2 }

    /// In-capsule data the target accepts on I/O queues (IOCCSZ×16−64).
    public var ioInCapsuleLimit: Int { max(0, Int(identify.ioccsz) * 16 - 64) }
    /// Maximum data transfer size (MDTS), 0 = unlimited → 1 MiB cap here.
    public var maxTransferSize: Int { identify.mdts == 0 ? 1 << 20 : 4096 << Int(identify.mdts) }

    /// Connects: admin queue, Connect, CC.EN, Identify, Number of Queues, I/O queues, AEC, one AER.
    public static func connect(to address: TransportAddress, subsystemNQN: String, identity: HostIdentity,
                               options: ControllerOptions = ControllerOptions(), group: any EventLoopGroup,
                               logger: Logger = Logger(label: "halyard.nvme-host")) async throws -> NVMeController {
        let discovery = subsystemNQN == "nqn.2014-08.org.nvmexpress.discovery"
        let admin = try await HostQueue.open(address: address, queueID: 0, depth: 32, headerDigest: options.headerDigest,
                                             dataDigest: options.dataDigest, inCapsuleLimit: 8192,
                                             connectTimeout: options.connectTimeout, group: group)
        do {
            let katoMs = UInt32(clamping: options.keepAliveTimeout.nanoseconds / 1_000_000)
            let connect = try await connectQueue(admin, queueID: 0, queueSize: 32, kato: discovery ? 0 : katoMs,
                                                 controllerID: 0xFFFF, subsystemNQN: subsystemNQN, identity: identity,
                                                 timeout: options.adminTimeout)
            let controllerID = UInt16(truncatingIfNeeded: connect.entry.dw0)
            let cap = ControllerCapabilities(rawValue: try await getProperty(admin, ControllerProperty.capabilities, eightBytes: true, timeout: options.adminTimeout))
            try await setProperty(admin, ControllerProperty.configuration, UInt64(ControllerConfiguration.linuxDefault(enable: false).rawValue), timeout: options.adminTimeout)
            try await setProperty(admin, ControllerProperty.configuration, UInt64(ControllerConfiguration.linuxDefault(enable: true).rawValue), timeout: options.adminTimeout)
            let readyDeadline = NIODeadline.now() + .milliseconds(500 * Int64(max(1, cap.timeout500ms)))
            while true {
                let csts = ControllerStatus(rawValue: UInt32(truncatingIfNeeded: try await getProperty(admin, ControllerProperty.status, eightBytes: false, timeout: options.adminTimeout)))
                if csts.fatal { throw NVMeHostError.connectFailed("controller fatal status while enabling") }
                if csts.ready { break }
                guard NIODeadline.now() < readyDeadline else { throw NVMeHostError.connectFailed("controller not ready in CAP.TO") }
                try await Task.sleep(for: .milliseconds(20))
            }
            var idData = try await admin.execute(.identify(.controller), readLength: 4096, timeout: options.adminTimeout).data
            let identify = try IdentifyController(decoding: &idData)
            guard identify.cntlid == controllerID else {
                throw NVMeHostError.connectFailed("Identify CNTLID \(identify.cntlid) differs from Connect's \(controllerID)")
            }
            guard identify.subnqn == subsystemNQN else {
                throw NVMeHostError.connectFailed("Identify SUBNQN \(identify.subnqn) differs from \(subsystemNQN)")
            }
            var ioQueues: [HostQueue] = []
            if !discovery && options.ioQueueCount > 0 {
                let want = UInt32(options.ioQueueCount - 1)
                let granted = try await admin.execute(.setFeature(.numberOfQueues, want | want << 16), timeout: options.adminTimeout).entry.dw0
                let count = Int(min(granted & 0xFFFF, granted >> 16)) + 1
                let depth = min(options.ioQueueDepth, cap.maxQueueEntries, Int(identify.maxcmd == 0 ? UInt16.max : identify.maxcmd))
                let inCapsule = max(0, Int(identify.ioccsz) * 16 - 64)
                for qid in 1...min(count, options.ioQueueCount) {
                    let loop: any EventLoopGroup = options.ioQueueEventLoops.flatMap { $0.isEmpty ? nil : $0[(qid - 1) % $0.count] } ?? group
                    let queue = try await HostQueue.open(address: address, queueID: UInt16(qid), depth: depth,
                                                         headerDigest: options.headerDigest, dataDigest: options.dataDigest,
                                                         inCapsuleLimit: inCapsule, connectTimeout: options.connectTimeout, group: loop)
                    do {
                        _ = try await connectQueue(queue, queueID: UInt16(qid), queueSize: UInt16(depth), kato: 0,
                                                   attributes: options.disableSQFlowControl ? 0x4 : 0, controllerID: controllerID, subsystemNQN: subsystemNQN, identity: identity,
                                                   timeout: options.adminTimeout)
                    } catch {
                        await queue.close()
                        for q in ioQueues { await q.close() }
                        throw error
                    }
                    ioQueues.append(queue)
                }
            }
            let controller = NVMeController(address: address, subsystemNQN: subsystemNQN, identity: identity, options: options,
                                            controllerID: controllerID, identify: identify, capabilities: cap,
                                            admin: admin, ioQueues: ioQueues, logger: logger)
            let supported = identify.oaes & options.asyncEvents
            if supported != 0 {
                _ = try? await admin.execute(.setFeature(.asyncEventConfiguration, supported), timeout: options.adminTimeout)
                controller.armAsyncEvent()
            }
            if !discovery { controller.startKeepAlive() }
            return controller
        } catch {
            await admin.close()
            throw error
        }
    }

    static func connectQueue(_ queue: HostQueue, queueID: UInt16, queueSize: UInt16, kato: UInt32, attributes: UInt8 = 0, controllerID: UInt16,
                             subsystemNQN: String, identity: HostIdentity, timeout: TimeAmount) async throws -> CommandCompletion {
        var data = ByteBuffer()
        ConnectData(hostID: identity.hostID, controllerID: controllerID, subsystemNQN: subsystemNQN, hostNQN: identity.hostNQN).encode(into: &data)
        let sqe = ConnectCommand(queueID: queueID, submissionQueueSize: queueSize - 1, attributes: attributes,
                                 keepAliveTimeoutMilliseconds: kato)
            .submissionQueueEntry(commandID: 0)
        let completion = try await queue.submit(sqe, data: data, timeout: timeout).get()
        guard completion.entry.status.isSuccess else {
            throw NVMeHostError.connectFailed("Connect of queue \(queueID) refused: \(completion.entry.status) (DW0 0x\(String(completion.entry.dw0, radix: 16)))")
        }
        return completion
    }

    static func getProperty(_ admin: HostQueue, _ offset: UInt32, eightBytes: Bool, timeout: TimeAmount) async throws -> UInt64 {
        let c = try await admin.execute(PropertyCommand(isEightBytes: eightBytes, offset: offset).submissionQueueEntry(set: false, commandID: 0), timeout: timeout)
        return UInt64(c.entry.dw0) | UInt64(c.entry.dw1) << 32
    }

    static func setProperty(_ admin: HostQueue, _ offset: UInt32, _ value: UInt64, timeout: TimeAmount) async throws {
        _ = try await admin.execute(PropertyCommand(isEightBytes: false, offset: offset, value: value).submissionQueueEntry(set: true, commandID: 0), timeout: timeout)
    }

    // MARK: Keep-alive and asynchronous events

    private func startKeepAlive() {
        let kato = options.keepAliveTimeout
        guard kato.nanoseconds > 0 else { return }
        let interval = TimeAmount.nanoseconds(kato.nanoseconds / 2)
        let admin = self.admin
        let timeout = kato
        let logger = self.logger
        let task = admin.channel.eventLoop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { task in
            guard admin.isActive else { task.cancel(); return }
            admin.submit(SubmissionQueueEntry(opcode: AdminOpcode.keepAlive.rawValue), timeout: timeout).whenFailure { error in
                logger.warning("keep-alive failed: \(error)")
            }
        }
        keepAlive.withLock { $0 = task }
    }

    private func armAsyncEvent() {
        admin.submit(SubmissionQueueEntry(opcode: AdminOpcode.asyncEventRequest.rawValue), timeout: nil).whenComplete { [self] result in
            switch result {
            case .success(let completion) where completion.entry.status.isSuccess:
                let dw0 = completion.entry.dw0
                events.yield(dw0)
                // Read the log page the event names (RAE 0) so the target re-enables that kind.
                let lid = UInt8(truncatingIfNeeded: dw0 >> 16)
                if lid == LogPageIdentifier.ana.rawValue || lid == LogPageIdentifier.changedNamespaces.rawValue {
                    _ = admin.submit(.getLogPage(lid, length: 4096), readLength: 4096, timeout: options.adminTimeout)
                }
                armAsyncEvent()
            case .success(let completion):
                logger.warning("asynchronous event request failed: \(completion.entry.status)")
            case .failure:
                events.finish()
            }
        }
    }

    // MARK: Commands

    /// Admin passthrough (Identify, Get Log Page, Set/Get Features…).
    public func adminCommand(_ command: SubmissionQueueEntry, data: ByteBuffer? = nil, readLength: Int = 0) async throws -> CommandCompletion {
        try await admin.execute(command, data: data, readLength: readLength, timeout: options.adminTimeout)
    }

    /// The I/O queue for the next command (round-robin).
    public func nextIOQueue() -> HostQueue? {
        guard !ioQueues.isEmpty else { return nil }
        let i = nextQueue.wrappingAdd(1, ordering: .relaxed).oldValue
        return ioQueues[i % ioQueues.count]
    }

    /// An I/O command on the next queue, returning the future (no await per I/O).
    public func submitIO(_ command: SubmissionQueueEntry, data: ByteBuffer? = nil, readLength: Int = 0) -> EventLoopFuture<CommandCompletion> {
        guard let queue = nextIOQueue() else {
            return admin.channel.eventLoop.makeFailedFuture(NVMeHostError.invalidArgument("no I/O queues"))
        }
        return queue.submit(command, data: data, readLength: readLength, timeout: options.ioTimeout)
    }

    public func identifyNamespace(_ nsid: UInt32) async throws -> IdentifyNamespace {
        var data = try await adminCommand(.identify(.namespace, nsid: nsid), readLength: 4096).data
        return try IdentifyNamespace(decoding: &data)
    }

    public func namespaceDescriptors(_ nsid: UInt32) async throws -> NamespaceIdentificationDescriptorList {
        var data = try await adminCommand(.identify(.namespaceIdentificationDescriptors, nsid: nsid), readLength: 4096).data
        return try NamespaceIdentificationDescriptorList(decoding: &data)
    }

    public func activeNamespaces() async throws -> [UInt32] {
        var data = try await adminCommand(.identify(.activeNamespaceList), readLength: 4096).data
        return try ActiveNamespaceList(decoding: &data).namespaceIDs
    }

    public func anaLogPage() async throws -> ANALogPage {
        let size = 16 + 32 * Int(identify.nanagrpid) + 4 * Int(identify.mnan)
        var data = try await adminCommand(.getLogPage(LogPageIdentifier.ana.rawValue, length: size), readLength: size).data
        return try ANALogPage(decoding: &data)
    }

    /// The discovery log page (for a discovery controller): header, entries, header again, as
    /// libnvme reads it, retrying when the generation counter moved.
    public func discoveryLogPage() async throws -> DiscoveryLogPage {
        for _ in 0..<5 {
            let header = try await adminCommand(.getLogPage(LogPageIdentifier.discovery.rawValue, length: 1024, nsid: 0), readLength: 1024).data
            let (gen, count, _) = try DiscoveryLogPage.decodeHeader(header)
            var page = ByteBuffer()
            page.writeImmutableBuffer(header)
            if count > 0 {
                let length = Int(min(count, 1024)) * DiscoveryLogEntry.encodedSize
                var entries = try await adminCommand(.getLogPage(LogPageIdentifier.discovery.rawValue, length: length, offset: 1024, nsid: 0), readLength: length).data
                page.writeBuffer(&entries)
            }
            let again = try await adminCommand(.getLogPage(LogPageIdentifier.discovery.rawValue, length: 1024, nsid: 0), readLength: 1024).data
            let (gen2, count2, _) = try DiscoveryLogPage.decodeHeader(again)
            if gen == gen2 && count == count2 { return try DiscoveryLogPage(decoding: &page) }
        }
        throw NVMeHostError.protocolError("discovery log kept changing")
    }

    /// Normal shutdown (CC.SHN = 01b, wait for CSTS.SHST = complete), then closes every queue.
    public func shutdown() async {
        keepAlive.withLock { $0?.cancel(); $0 = nil }
        for q in ioQueues { await q.close() }
        if admin.isActive {
            let timeout = TimeAmount.seconds(5)
            if (try? await Self.setProperty(admin, ControllerProperty.configuration, 0x0046_4001, timeout: timeout)) != nil {
                let deadline = NIODeadline.now() + timeout
                while NIODeadline.now() < deadline,
                      let v = try? await Self.getProperty(admin, ControllerProperty.status, eightBytes: false, timeout: timeout),
                      ControllerStatus(rawValue: UInt32(truncatingIfNeeded: v)).shutdownStatus != 2 {
                    try? await Task.sleep(for: .milliseconds(20))
                }
            }
        }
        await admin.close()
        events.finish()
    }
}
