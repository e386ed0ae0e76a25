import Logging
import NIOCore
import NIOPosix
import NVMe
import NVMeHost
import Synchronization

/// A child URI, `nvmf://HOST:PORT/SUBNQN` (docs/notes/nexus-plan.md "Child URIs"): an NVMe/TCP
/// transport address (NVMe/TCP transport spec 1.0 §3.1; an IPv6 host in brackets, the port 4420
/// when omitted) and the subsystem NQN of the replica (NVMe base spec 2.0 §4.5).
public struct ChildURI: Hashable, Sendable, CustomStringConvertible {
    public var host: String
    public var port: Int
    public var subsystemNQN: String

    public static let scheme = "nvmf://"
    /// The IANA NVMe/TCP port, used when the URI names none.
    public static let defaultPort = 4420

    public init(host: String, port: Int, subsystemNQN: String) {
        self.host = host
        self.port = port
        self.subsystemNQN = subsystemNQN
    }

    /// Parses `uri`; a malformed one is ``ChildIOError/invalidRequest(_:)`` naming what is wrong.
    public init(parsing uri: String) throws(ChildIOError) {
        func bad(_ why: String) -> ChildIOError { .invalidRequest("bad child URI '\(uri)': \(why); expected nvmf://HOST:PORT/SUBNQN") }
        guard uri.lowercased().hasPrefix(Self.scheme) else { throw bad("not an nvmf:// URI") }
        let rest = uri.dropFirst(Self.scheme.count)
        guard let slash = rest.firstIndex(of: "/") else { throw bad("no subsystem NQN") }
        let authority = rest[..<slash]
        let nqn = String(rest[rest.index(after: slash)...])
        guard !nqn.isEmpty else { throw bad("empty subsystem NQN") }
        guard nqn.utf8.count <= 223 else { throw bad("subsystem NQN longer than 223 bytes") }
        guard nqn.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7F }) else {
            throw bad("subsystem NQN with spaces or non-ASCII characters")
        }
        let host: Substring
        var portText: Substring?
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { throw bad("unterminated IPv6 address") }
            host = authority[authority.index(after: authority.startIndex)..<close]
            let after = authority[authority.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { throw bad("junk after the IPv6 address") }
                portText = after.dropFirst()
            }
            guard host.contains(":") else { throw bad("brackets around a host that is not an IPv6 address") }
        } else {
            let parts = authority.split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count <= 2 else { throw bad("an IPv6 address must be in brackets") }
            host = parts[0]
            if parts.count == 2 { portText = parts[1] }
        }
        guard !host.isEmpty else { throw bad("empty host") }
        guard !host.contains(where: { $0 == "@" || $0 == "/" || $0 == "?" || $0 == "#" || $0.isWhitespace }) else {
            throw bad("invalid character in the host")
        }
        var port = Self.defaultPort
        if let portText {
            guard !portText.isEmpty, portText.allSatisfy({ $0.isASCII && $0.isNumber }), portText.count <= 5,
                  let value = Int(portText), (1...65535).contains(value) else { throw bad("port must be 1...65535") }
            port = value
        }
        self.init(host: String(host), port: port, subsystemNQN: nqn)
    }

    public var address: TransportAddress { TransportAddress(host: host, port: port) }

    public var description: String { "\(Self.scheme)\(address)/\(subsystemNQN)" }
}

/// How a ``RemoteChild`` connects: fail-fast timers so a killed replica faults its child in about
/// a second (docs/notes/nexus-plan.md "Remote child fail-fast options"), an I/O queue per event loop, and no
/// reconnect — a faulted child is reopened by online/add. NVMe over Fabrics spec 1.1 §3.3 (KATO).
public struct ChildOpenOptions: Sendable {
    /// TCP connect + ICResp, per queue.
    public var connectTimeout: TimeAmount = .seconds(1)
    /// Each Read/Write/Write Zeroes/DSM/Flush. A timed-out command closes the connection (the
    /// queue cannot be trusted after it), so the child is then lost.
    public var ioTimeout: TimeAmount = .seconds(1)
    /// Keep Alive Timeout sent in Connect; keep-alives go every KATO/2. Not what detects a dead
    /// replica under load (``ioTimeout`` does, and a killed process resets the connection at
    /// once): it only notices a silently vanished replica while the volume is idle, so it is
    /// 10 s, as Mayastor's nexus uses for its children — an idle child then costs one Keep Alive
    /// every 5 s, and a nexus node stalled for a few seconds does not lose its children.
    public var keepAliveTimeout: TimeAmount = .seconds(10)
    /// Admin commands (Connect, Identify, Get Log Page).
    public var adminTimeout: TimeAmount = .seconds(5)
    /// Reservation commands: a Preempt and Abort completes only once the preempted host's
    /// commands have drained on the target, so it gets longer than plain I/O.
    public var reservationTimeout: TimeAmount = .seconds(5)
    /// Entries of each I/O queue; more concurrent commands wait for a free entry.
    public var ioQueueDepth = 128
    /// One I/O queue per event loop of ``eventLoopGroup`` (at most 8), each on its loop: the
    /// callback I/O path submits on the queue of the loop it runs on, so a nexus serving its host
    /// on that loop fans out without a thread hop. False: one I/O queue.
    public var ioQueuePerEventLoop = true
    public var eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    public var logger = Logger(label: "halyard.nexus.child")

    public init() {}

    /// The controller options these amount to.
    public var controllerOptions: ControllerOptions {
        var o = ControllerOptions()
        o.connectTimeout = connectTimeout
        o.ioTimeout = ioTimeout
        o.keepAliveTimeout = keepAliveTimeout
        o.adminTimeout = adminTimeout
        o.ioQueueDepth = ioQueueDepth
        if ioQueuePerEventLoop {
            let loops = Array(eventLoopGroup.makeIterator().prefix(8))
            o.ioQueueCount = max(1, loops.count)
            o.ioQueueEventLoops = loops
        } else {
            o.ioQueueCount = 1
        }
        return o
    }
}

/// A ``ChildDevice`` over one ``NVMeController`` to a replica's subsystem, namespace 1 (NVMe/TCP
/// transport spec 1.0; NVM command set spec 1.0 §3 for I/O, NVMe base spec 2.0 §7.3 reservations,
/// §5.16.1.21 reservation notices). No reconnect: once any queue of the controller closes (the
/// replica went away, a command or keep-alive timed out) the child is lost for good — every later
/// command fails with ``ChildIOError/unreachable(_:)`` and ``notices`` reports
/// ``ChildNotice/connectionLost(_:)``.
///
/// - Transfers larger than the controller's MDTS (or 65 536 blocks) are split and sent
///   concurrently; at most the queue depth of commands is outstanding, the rest wait.
/// - Reservation Conflict (00h/83h) is ``ChildIOError/reservationConflict``; any other error status
///   is ``ChildIOError/status(_:)``; transport loss, timeouts and refused connects are
///   ``ChildIOError/unreachable(_:)``.
/// - Notices: on the "Reservation Log Page Available" event (DW0 00800006h) the Reservation
///   Notification log page (80h) is read until empty; "Registration Preempted" for namespace 1
///   becomes ``ChildNotice/registrationPreempted``, the other kinds
///   ``ChildNotice/reservationReleased``. `notices` has a single consumer.
public final class RemoteChild: ChildDevice {
    public let uri: String
    public let target: ChildURI
    public let controller: NVMeController
    /// Always 1: a replica's subsystem has one namespace.
    public let namespaceID: UInt32 = 1
    public let blockSize: Int
    public let blockCount: UInt64
    public let notices: AsyncStream<ChildNotice>
    public let options: ChildOpenOptions
    private let noticeSink: AsyncStream<ChildNotice>.Continuation
    /// The I/O queues, each with its own command slots (see ``ChildOpenOptions/ioQueuePerEventLoop``).
    private let lanes: [Lane]
    /// Round robin over ``lanes`` for commands sent from tasks.
    private let laneCursor = Atomic<Int>(0)
    /// Blocks per Read/Write command: MDTS, and the 16-bit NLB field.
    private let maxBlocksPerTransfer: UInt64
    private let state = Mutex(State())

    private struct State {
        var closed = false
        /// Why the connection is gone; set once.
        var lost: String?
        var eventTask: Task<Void, Never>?
    }

    /// One I/O queue and the slots that keep its commands within its depth.
    private struct Lane: Sendable {
        let queue: HostQueue
        let slots: CommandSlots
    }

    private init(uri: String, target: ChildURI, controller: NVMeController, blockSize: Int, blockCount: UInt64,
                 options: ChildOpenOptions) {
        self.uri = uri
        self.target = target
        self.controller = controller
        lanes = controller.ioQueues.map { Lane(queue: $0, slots: CommandSlots($0.depth)) }
        self.blockSize = blockSize
        self.blockCount = blockCount
        self.options = options
        maxBlocksPerTransfer = UInt64(max(1, min(1 << 16, controller.maxTransferSize / blockSize)))
        (notices, noticeSink) = AsyncStream.makeStream(of: ChildNotice.self, bufferingPolicy: .unbounded)
    }

    deinit {
        // Not closed by its owner: at least do not leak the connection.
        if !state.withLock({ $0.closed }) {
            for q in [controller.admin] + controller.ioQueues { q.channel.close(promise: nil) }
            noticeSink.finish()
        }
    }

    /// Connects to the child at `uri` as `identity` (Connect, Identify Namespace 1 for the block
    /// size and count) and starts listening for its asynchronous events.
    public static func open(uri: String, identity: HostIdentity,
                            options: ChildOpenOptions = ChildOpenOptions()) async throws(ChildIOError) -> RemoteChild {
        let target = try ChildURI(parsing: uri)
        let controller: NVMeController
        do {
            controller = try await NVMeController.connect(to: target.address, subsystemNQN: target.subsystemNQN, identity: identity,
                                                          options: options.controllerOptions, group: options.eventLoopGroup,
                                                          logger: options.logger)
        } catch {
            throw .unreachable("cannot connect to \(target): \(error)")
        }
        let identify: IdentifyNamespace
        do {
            guard !controller.ioQueues.isEmpty else { throw ChildIOError.unreachable("\(target) granted no I/O queue") }
            identify = try await controller.identifyNamespace(1)
            guard identify.nsze > 0 else { throw ChildIOError.status(.invalidNamespace) }
            let format = Int(identify.flbas & 0x0F)
            guard format < identify.lbaFormats.count else {
                throw ChildIOError.unreachable("\(target): namespace 1 uses LBA format \(format), of \(identify.lbaFormats.count)")
            }
            let blockSize = identify.lbaFormats[format].dataSize
            guard blockSize >= 512, blockSize.nonzeroBitCount == 1, identify.lbaFormats[format].metadataSize == 0 else {
                throw ChildIOError.unreachable("\(target): namespace 1 has an unsupported block format (\(blockSize) bytes)")
            }
            let child = RemoteChild(uri: uri, target: target, controller: controller, blockSize: blockSize,
                                    blockCount: identify.nsze, options: options)
            child.start()
            return child
        } catch {
            await controller.shutdown()
            throw ChildIOError.childError(hostError: error)
        }
    }

    /// ``open(uri:identity:options:)`` as the nexus `identity` (its host NQN and host ID).
    public static func open(uri: String, identity: NexusIdentity,
                            options: ChildOpenOptions = ChildOpenOptions()) async throws(ChildIOError) -> RemoteChild {
        try await open(uri: uri, identity: HostIdentity(hostNQN: identity.hostNQN, hostID: identity.hostID), options: options)
    }

    private func start() {
        for q in [controller.admin] + controller.ioQueues {
            let qid = q.queueID
            q.channel.closeFuture.whenComplete { [weak self] _ in
                self?.connectionLost("connection to \(self?.target.address.description ?? "?") lost (queue \(qid) closed)")
            }
        }
        let events = controller.asyncEvents
        let task = Task { [weak self] in
            for await event in events where event == AsyncEventCompletion.reservationLog.dword {
                guard let self else { return }
                await self.readReservationNotices()
            }
        }
        state.withLock { $0.eventTask = task }
    }

    /// Reads log page 80h until it is empty (each read removes the oldest notice).
    private func readReservationNotices() async {
        let lid = LogPageIdentifier.reservationNotification.rawValue
        let size = ReservationNotificationLogPage.encodedSize
        for _ in 0..<1024 {
            let page: ReservationNotificationLogPage
            do {
                var data = try await controller.adminCommand(.getLogPage(lid, length: size), readLength: size).data
                page = try ReservationNotificationLogPage(decoding: &data)
            } catch {
                options.logger.debug("reading the reservation notification log failed: \(error)", metadata: ["child": "\(uri)"])
                return
            }
            guard page.count != 0, page.rawType != ReservationNotificationLogPage.NoticeType.empty.rawValue else { return }
            guard page.namespaceID == namespaceID || page.namespaceID == 0xFFFF_FFFF else { continue }
            let notice: ChildNotice = page.type == .registrationPreempted ? .registrationPreempted : .reservationReleased
            options.logger.info("reservation notice \(page.rawType)", metadata: ["child": "\(uri)"])
            noticeSink.yield(notice)
        }
    }

    private func connectionLost(_ reason: String) {
        let first = state.withLock { s -> Bool in
            guard !s.closed, s.lost == nil else { return false }
            s.lost = reason
            return true
        }
        guard first else { return }
        options.logger.warning("child lost: \(reason)", metadata: ["child": "\(uri)"])
        // Fail everything in flight now and keep the keep-alive from running on a dead controller.
        for q in [controller.admin] + controller.ioQueues { q.channel.close(promise: nil) }
        noticeSink.yield(.connectionLost(reason))
    }

    // MARK: Commands

    private func checkUsable() throws(ChildIOError) {
        let (closed, lost) = state.withLock { ($0.closed, $0.lost) }
        if closed { throw .closed }
        if let lost { throw .unreachable(lost) }
    }

    /// What a command's transport failure means now: closed by us, or the connection lost.
    private func failure(_ error: any Error) -> ChildIOError {
        let (closed, lost) = state.withLock { ($0.closed, $0.lost) }
        if closed { return .closed }
        let mapped = ChildIOError.childError(hostError: error)
        if case .unreachable(let why) = mapped, let lost, lost != why { return .unreachable("\(why); \(lost)") }
        return mapped
    }

    /// Sends one command on an I/O queue (round robin); the completion's status is returned as is.
    fileprivate func submit(_ command: SubmissionQueueEntry, data: ByteBuffer?, readLength: Int,
                            timeout: TimeAmount) async throws(ChildIOError) -> CommandCompletion {
        try checkUsable()
        let lane = lanes[(laneCursor.wrappingAdd(1, ordering: .relaxed).oldValue & Int.max) % lanes.count]
        guard await lane.slots.acquire() else { throw .closed }
        defer { lane.slots.release() }
        do {
            return try await lane.queue.submit(command, data: data, readLength: readLength, timeout: timeout).get()
        } catch {
            throw failure(error)
        }
    }

    /// Sends one I/O command; an error status is thrown.
    private func execute(_ command: SubmissionQueueEntry, data: ByteBuffer? = nil,
                         readLength: Int = 0) async throws(ChildIOError) -> CommandCompletion {
        let completion = try await submit(command, data: data, readLength: readLength, timeout: options.ioTimeout)
        guard completion.entry.status.isSuccess else { throw ChildIOError.childError(status: completion.entry.status) }
        return completion
    }

    private func check(lba: UInt64, blocks: UInt64) throws(ChildIOError) {
        let (end, overflow) = lba.addingReportingOverflow(blocks)
        guard blocks > 0, !overflow, end <= blockCount else {
            throw .invalidRequest("blocks \(lba)+\(blocks) outside the child's \(blockCount) blocks")
        }
    }

    public func read(lba: UInt64, blocks: UInt32) async throws(ChildIOError) -> ByteBuffer {
        try check(lba: lba, blocks: UInt64(blocks))
        let pieces = Self.split(lba: lba, blocks: UInt64(blocks), most: maxBlocksPerTransfer)
        let nsid = namespaceID, blockSize = self.blockSize
        let parts = try await ChildConcurrency.map(pieces) { [self] (piece) async throws(ChildIOError) -> ByteBuffer in
            try await execute(.read(nsid: nsid, lba: piece.lba, blocks: piece.blocks, blockSize: blockSize),
                              readLength: Int(piece.blocks) * blockSize).data
        }
        if parts.count == 1 { return parts[0] }
        var result = ByteBufferAllocator().buffer(capacity: Int(blocks) * blockSize)
        for var part in parts { result.writeBuffer(&part) }
        return result
    }

    public func write(lba: UInt64, data: ByteBuffer, fua: Bool) async throws(ChildIOError) {
        guard data.readableBytes > 0, data.readableBytes % blockSize == 0 else {
            throw .invalidRequest("\(data.readableBytes) bytes is not a whole number of \(blockSize)-byte blocks")
        }
        let blocks = UInt64(data.readableBytes / blockSize)
        try check(lba: lba, blocks: blocks)
        let pieces = Self.split(lba: lba, blocks: blocks, most: maxBlocksPerTransfer)
        let nsid = namespaceID, blockSize = self.blockSize
        _ = try await ChildConcurrency.map(pieces) { [self] (piece) async throws(ChildIOError) -> Void in
            let slice = data.getSlice(at: data.readerIndex + Int(piece.lba - lba) * blockSize, length: Int(piece.blocks) * blockSize)!
            _ = try await execute(.write(nsid: nsid, lba: piece.lba, blocks: piece.blocks, fua: fua), data: slice)
        }
    }

    // MARK: Callback I/O path

    /// Sends one I/O command without a task or future, on the queue of the caller's event loop
    /// when it has one (no thread hop), else on the first: the slot is taken without waiting
    /// (false when none is free or the child is unusable — the caller then takes the async path,
    /// which waits or reports the error). `completion` runs on the queue's loop with the data
    /// or the error, status errors included.
    private func send(_ command: SubmissionQueueEntry, data: ByteBuffer?, readLength: Int,
                      completion: @escaping @Sendable (Result<ByteBuffer, ChildIOError>) -> Void) -> Bool {
        let lane = lanes.first { $0.queue.eventLoop.inEventLoop } ?? lanes[0]
        guard state.withLock({ !$0.closed && $0.lost == nil }), lane.slots.tryAcquire() else { return false }
        let queue = lane.queue, slots = lane.slots, timeout = options.ioTimeout
        let run: @Sendable () -> Void = { [self] in
            queue.submitOnEventLoop(command, data: data, readLength: readLength, timeout: timeout) { [self] result in
                slots.release()
                switch result {
                case .success(let done) where done.entry.status.isSuccess: completion(.success(done.data))
                case .success(let done): completion(.failure(.childError(status: done.entry.status)))
                case .failure(let error): completion(.failure(failure(error)))
                }
            }
        }
        if queue.eventLoop.inEventLoop { run() } else { queue.eventLoop.execute(run) }
        return true
    }

    /// One command when the write fits one transfer and a slot is free; else the async path.
    public func submitWrite(lba: UInt64, data: ByteBuffer, fua: Bool, on eventLoop: any EventLoop,
                            completion: @escaping @Sendable (ChildIOError?) -> Void) {
        let blocks = UInt64(data.readableBytes / blockSize)
        if data.readableBytes > 0, data.readableBytes % blockSize == 0, blocks <= maxBlocksPerTransfer,
           (try? check(lba: lba, blocks: blocks)) != nil,
           send(.write(nsid: namespaceID, lba: lba, blocks: UInt32(blocks), fua: fua), data: data, readLength: 0,
                completion: { result in
                    switch result {
                    case .success: completion(nil)
                    case .failure(let error): completion(error)
                    }
                }) {
            return
        }
        writeInTask(lba: lba, data: data, fua: fua, completion: completion)
    }

    /// One command when the read fits one transfer and a slot is free; else the async path.
    public func submitRead(lba: UInt64, blocks: UInt32, on eventLoop: any EventLoop,
                           completion: @escaping @Sendable (Result<ByteBuffer, ChildIOError>) -> Void) {
        if UInt64(blocks) <= maxBlocksPerTransfer, (try? check(lba: lba, blocks: UInt64(blocks))) != nil,
           send(.read(nsid: namespaceID, lba: lba, blocks: blocks, blockSize: blockSize), data: nil,
                readLength: Int(blocks) * blockSize, completion: completion) {
            return
        }
        readInTask(lba: lba, blocks: blocks, completion: completion)
    }

    public func writeZeroes(lba: UInt64, blocks: UInt32, deallocate: Bool) async throws(ChildIOError) {
        try check(lba: lba, blocks: UInt64(blocks))
        let nsid = namespaceID
        _ = try await ChildConcurrency.map(Self.split(lba: lba, blocks: UInt64(blocks), most: 1 << 16)) { [self] (piece) async throws(ChildIOError) -> Void in
            _ = try await execute(.writeZeroes(nsid: nsid, lba: piece.lba, blocks: piece.blocks, deallocate: deallocate))
        }
    }

    public func deallocate(lba: UInt64, blocks: UInt32) async throws(ChildIOError) {
        try check(lba: lba, blocks: UInt64(blocks))
        // One Dataset Management range {context attributes, NLB (not 0's based), SLBA}.
        var range = ByteBufferAllocator().buffer(capacity: 16)
        range.writeInteger(UInt32(0), endianness: .little)
        range.writeInteger(blocks, endianness: .little)
        range.writeInteger(lba, endianness: .little)
        _ = try await execute(.deallocate(nsid: namespaceID, rangeCount: 1), data: range)
    }

    public func flush() async throws(ChildIOError) {
        _ = try await execute(.flush(nsid: namespaceID))
    }

    // MARK: Reservations

    /// Runs reservation commands through ``ReservationCommandSender`` (one queue, never replayed).
    private func reservation<T>(_ body: (Sender) async throws -> T) async throws(ChildIOError) -> T {
        try checkUsable()
        do {
            return try await body(Sender(child: self))
        } catch {
            throw failure(error)
        }
    }

    public func register(key: UInt64) async throws(ChildIOError) {
        let nsid = namespaceID
        try await reservation { sender in
            do {
                try await sender.reservationRegister(namespaceID: nsid, action: .register, newKey: key)
            } catch NVMeHostError.status(let status, _) where status.isReservationConflict {
                // Registered already, with another key: replace it whatever it is.
                try await sender.reservationRegister(namespaceID: nsid, action: .replace, newKey: key, ignoreExistingKey: true)
            }
        }
    }

    public func acquire(key: UInt64, type: ReservationType, preempting: UInt64?) async throws(ChildIOError) {
        let nsid = namespaceID
        try await reservation { sender in
            try await sender.reservationAcquire(namespaceID: nsid, action: preempting == nil ? .acquire : .preemptAndAbort, type: type,
                                                currentKey: key, preemptKey: preempting ?? 0)
        }
    }

    public func release(key: UInt64, type: ReservationType) async throws(ChildIOError) {
        let nsid = namespaceID
        try await reservation { sender in
            try await sender.reservationRelease(namespaceID: nsid, action: .release, type: type, currentKey: key)
        }
    }

    public func reservationReport() async throws(ChildIOError) -> ReservationStatus {
        let nsid = namespaceID
        return try await reservation { sender in try await sender.reservationReport(namespaceID: nsid) }
    }

    private struct Sender: ReservationCommandSender {
        let child: RemoteChild

        func sendReservationCommand(_ command: SubmissionQueueEntry, data: ByteBuffer?, readLength: Int) async throws -> CommandCompletion {
            try await child.submit(command, data: data, readLength: readLength, timeout: child.options.reservationTimeout)
        }
    }

    // MARK: Allocation map, close

    public func allocatedRanges() async throws(ChildIOError) -> [Range<UInt64>]? {
        try checkUsable()
        do {
            return try await controller.allocatedRanges(namespaceID: namespaceID)
        } catch {
            throw failure(error)
        }
    }

    public func close() async {
        let task: Task<Void, Never>?? = state.withLock { s in
            guard !s.closed else { return nil }
            s.closed = true
            return .some(s.eventTask)
        }
        guard let task else { return }
        for lane in lanes { lane.slots.close() }
        await controller.shutdown()
        task?.cancel()
        noticeSink.finish()
    }

    static func split(lba: UInt64, blocks: UInt64, most: UInt64) -> [(lba: UInt64, blocks: UInt32)] {
        var pieces: [(lba: UInt64, blocks: UInt32)] = []
        var at = lba
        let end = lba + blocks
        while at < end {
            let n = min(most, end - at)
            pieces.append((at, UInt32(n)))
            at += n
        }
        return pieces
    }
}

extension NVMeStatus {
    /// Reservation Conflict (SCT 0h, SC 83h), whatever the DNR and More bits.
    var isReservationConflict: Bool {
        codeType == NVMeStatus.reservationConflict.codeType && code == NVMeStatus.reservationConflict.code
    }
}

extension ChildIOError {
    /// The nexus's reading of an NVMe status from a child: Reservation Conflict fences, anything
    /// else faults the child.
    static func childError(status: NVMeStatus) -> ChildIOError {
        status.isReservationConflict ? .reservationConflict : .status(status)
    }

    /// The nexus's reading of an NVMeHost failure: an error status as above, a bad argument as
    /// ``invalidRequest(_:)``, anything else (transport loss, timeout, refused connect) as
    /// ``unreachable(_:)``.
    static func childError(hostError error: any Error) -> ChildIOError {
        switch error {
        case let e as ChildIOError: e
        case NVMeHostError.status(let status, _): childError(status: status)
        case NVMeHostError.invalidArgument(let why): .invalidRequest(why)
        default: .unreachable("\(error)")
        }
    }
}

/// Runs a child's pieces of one request concurrently, in typed throws.
enum ChildConcurrency {
    static func map<Element: Sendable, T: Sendable>(
        _ elements: [Element], _ body: @escaping @Sendable (Element) async throws(ChildIOError) -> T
    ) async throws(ChildIOError) -> [T] {
        if elements.count == 1 { return [try await body(elements[0])] }
        do {
            return try await withThrowingTaskGroup(of: (Int, T).self) { group in
                for (index, element) in elements.enumerated() {
                    group.addTask { (index, try await body(element)) }
                }
                var results = [T?](repeating: nil, count: elements.count)
                for try await (index, value) in group { results[index] = value }
                return results.map { $0! }
            }
        } catch let error as ChildIOError {
            throw error
        } catch {
            throw .unreachable("\(error)")
        }
    }
}

/// At most `limit` commands outstanding on a queue (the host queue fails a command it has no
/// entry for); the rest wait in arrival order.
final class CommandSlots: Sendable {
    private struct State {
        var free: Int
        var closed = false
        var waiters: [CheckedContinuation<Bool, Never>] = []
        var head = 0
    }
    private let state: Mutex<State>

    init(_ limit: Int) {
        state = Mutex(State(free: max(1, limit)))
    }

    /// True with a slot; false once closed.
    func acquire() async -> Bool {
        let immediate: Bool? = state.withLock { s in
            if s.closed { return false }
            if s.free > 0 {
                s.free -= 1
                return true
            }
            return nil
        }
        if let immediate { return immediate }
        return await withCheckedContinuation { (c: CheckedContinuation<Bool, Never>) in
            let resumeNow: Bool? = state.withLock { s in
                if s.closed { return false }
                if s.free > 0 {
                    s.free -= 1
                    return true
                }
                s.waiters.append(c)
                return nil
            }
            if let resumeNow { c.resume(returning: resumeNow) }
        }
    }

    /// A slot if one is free now, without waiting or queueing behind waiters.
    func tryAcquire() -> Bool {
        state.withLock { s in
            guard !s.closed, s.free > 0 else { return false }
            s.free -= 1
            return true
        }
    }

    func release() {
        let next: CheckedContinuation<Bool, Never>? = state.withLock { s in
            if s.head < s.waiters.count {
                let c = s.waiters[s.head]
                s.head += 1
                if s.head == s.waiters.count {
                    s.waiters.removeAll(keepingCapacity: true)
                    s.head = 0
                }
                return c  // the slot passes straight to it
            }
            s.free += 1
            return nil
        }
        next?.resume(returning: true)
    }

    /// Fails every waiter and every later acquire.
    func close() {
        let waiting: [CheckedContinuation<Bool, Never>] = state.withLock { s in
            s.closed = true
            let w = Array(s.waiters[s.head...])
            s.waiters = []
            s.head = 0
            return w
        }
        for c in waiting { c.resume(returning: false) }
    }
}
