import Logging
import NIOCore
import NVMe
import Synchronization

/// One namespace reached over several paths (controllers of the same subsystem), as one block
/// device — Linux native NVMe multipath's `nvmeNnM` head (research/nvme-tcp.md §6).
///
/// - Every path is a ``ControllerSession`` (reconnects on its own per `sessionOptions`). Each new
///   controller is checked before it is used: same subsystem NQN (checked by
///   ``NVMeController/connect(to:subsystemNQN:identity:options:group:logger:)``), the namespace
///   active, and the same NGUID / UUID / EUI-64 and geometry as every other path; a path that
///   differs is refused.
/// - Path choice: ANA state first (optimized, then non-optimized; never inaccessible, persistent
///   loss or change), then ``PathPolicy``.
/// - A read/write/flush/``submit(_:data:readLength:)`` that fails with a path status (SCT 3) or a
///   transport loss is sent again on another usable path, or waits for one while any path is
///   connecting and not fast-failed; it is never surfaced while a path may still serve it. Other
///   statuses (Reservation Conflict 0x83 included) are the command's answer.
/// - Admin commands go to one live path and are never replayed on another.
/// - An ANA-change event, or an SCT 3 status, re-reads that path's ANA log.
public final class MultipathDevice: Sendable {
    public let subsystemNQN: String
    public let namespaceID: UInt32
    public let blockSize: Int
    public let blockCount: UInt64
    public let nguid: NGUID
    public let uuid: NamespaceUUID?
    let options: ControllerOptions
    let sessionOptions: ControllerSessionOptions
    let shared: MultipathShared
    let members: [MultipathPath]
    let logger: Logger
    private let selector: Mutex<PathSelector>
    private let queued = Atomic<Int>(0)
    private let closed = Atomic<Bool>(false)
    private let ticker: RepeatedTask

    private init(shared: MultipathShared, members: [MultipathPath], reference: NamespaceReference, options: ControllerOptions,
                 sessionOptions: ControllerSessionOptions, policy: PathPolicy, group: any EventLoopGroup, logger: Logger) {
        self.subsystemNQN = shared.subsystemNQN
        self.namespaceID = shared.namespaceID
        self.blockSize = reference.blockSize
        self.blockCount = reference.blockCount
        self.nguid = reference.nguid
        self.uuid = reference.uuid
        self.options = options
        self.sessionOptions = sessionOptions
        self.shared = shared
        self.members = members
        self.logger = logger
        self.selector = Mutex(PathSelector(policy: policy))
        // A safety net for queued I/O: re-evaluate the paths now and then even without a change.
        let signal = shared.signal
        ticker = group.next().scheduleRepeatedTask(initialDelay: .milliseconds(500), delay: .milliseconds(500)) { _ in
            signal.bump()
        }
    }

    /// Connects every path and checks they show the same namespace. Paths are tried in order; the
    /// first that connects defines the namespace identity. A path that is down keeps reconnecting
    /// in the background (it is checked when it comes up); one whose namespace differs makes
    /// `connect` throw ``MultipathError/pathRefused(_:_:)``. Throws if no path connects.
    public static func connect(paths: [TransportAddress], subsystemNQN: String, namespaceID: UInt32 = 1, identity: HostIdentity,
                               options: ControllerOptions = ControllerOptions(),
                               sessionOptions: ControllerSessionOptions = ControllerSessionOptions(),
                               policy: PathPolicy = .roundRobin, group: any EventLoopGroup,
                               logger: Logger = Logger(label: "halyard.nvme-multipath")) async throws -> MultipathDevice {
        guard !paths.isEmpty else { throw NVMeHostError.invalidArgument("no paths") }
        guard Set(paths).count == paths.count else { throw NVMeHostError.invalidArgument("the same path is given twice") }
        guard namespaceID != 0 && namespaceID < 0xFFFF_FFFE else { throw NVMeHostError.invalidArgument("namespace ID \(namespaceID)") }
        var logger = logger
        logger[metadataKey: "subnqn"] = "\(subsystemNQN)"
        logger[metadataKey: "nsid"] = "\(namespaceID)"
        let shared = MultipathShared(subsystemNQN: subsystemNQN, namespaceID: namespaceID)
        let members = paths.enumerated().map { index, address in
            let path = MultipathPath(index: index, address: address, shared: shared, logger: logger)
            path.attach(ControllerSession(address: address, subsystemNQN: subsystemNQN, identity: identity, options: options,
                                          sessionOptions: sessionOptions, group: group, logger: logger,
                                          validate: { try await path.validate($0) },
                                          onChange: { path.sessionChanged($0) }))
            return path
        }
        var errors: [String] = []
        for path in members {
            path.session.start()
            do {
                try await path.session.initialConnect()
            } catch {
                if case .refused(let why) = error as? ControllerSessionError {
                    for p in members { await p.close() }
                    throw MultipathError.pathRefused(path.address, why)
                }
                logger.warning("path \(path.address) did not connect; it keeps trying: \(error)")
                errors.append("\(path.address): \(error)")
            }
        }
        guard let reference = shared.reference.withLock({ $0 }) else {
            for p in members { await p.close() }
            throw MultipathError.noPathConnected(errors)
        }
        return MultipathDevice(shared: shared, members: members, reference: reference, options: options,
                               sessionOptions: sessionOptions, policy: policy, group: group, logger: logger)
    }

    // MARK: State

    /// Every path, in the order given to `connect`.
    public var paths: [MultipathPathInfo] { members.map { $0.info() } }

    /// The path sessions (e.g. to watch their state streams).
    public var sessions: [ControllerSession] { members.map(\.session) }

    /// The I/O policy; may change at run time (like writing `iopolicy` in sysfs).
    public var policy: PathPolicy {
        get { selector.withLock { $0.policy } }
        set { selector.withLock { $0.policy = newValue } }
    }

    /// Largest blocks per command: MDTS of the paths, and the 16-bit NLB field.
    public var maxBlocksPerCommand: UInt32 {
        let bytes = shared.maxTransferSize.load(ordering: .relaxed)
        return UInt32(clamping: min(bytes / blockSize, 65536))
    }

    // MARK: Block I/O

    /// Reads `blocks` blocks at `lba` (split into MDTS-sized commands as needed).
    public func read(lba: UInt64, blocks: UInt32) async throws -> ByteBuffer {
        try checkRange(lba: lba, blocks: UInt64(blocks))
        let chunks = split(lba: lba, blocks: UInt64(blocks))
        if chunks.count == 1 { return try await readChunk(lba: lba, blocks: blocks) }
        return try await withThrowingTaskGroup(of: (Int, ByteBuffer).self) { group in
            for (i, chunk) in chunks.enumerated() {
                group.addTask { (i, try await self.readChunk(lba: chunk.lba, blocks: chunk.blocks)) }
            }
            var parts = [ByteBuffer?](repeating: nil, count: chunks.count)
            for try await (i, data) in group { parts[i] = data }
            var result = ByteBufferAllocator().buffer(capacity: Int(blocks) * blockSize)
            for var part in parts { result.writeBuffer(&part!) }
            return result
        }
    }

    /// Writes `data` (a whole number of blocks) at `lba`; `fua` = durable before completion.
    public func write(lba: UInt64, data: ByteBuffer, fua: Bool = false) async throws {
        guard data.readableBytes > 0, data.readableBytes % blockSize == 0 else {
            throw NVMeHostError.invalidArgument("\(data.readableBytes) bytes is not a whole number of \(blockSize)-byte blocks")
        }
        let blocks = UInt64(data.readableBytes / blockSize)
        try checkRange(lba: lba, blocks: blocks)
        let chunks = split(lba: lba, blocks: blocks)
        if chunks.count == 1 { return try await writeChunk(lba: lba, data: data, fua: fua) }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for chunk in chunks {
                let offset = Int(chunk.lba - lba) * blockSize
                let slice = data.getSlice(at: data.readerIndex + offset, length: Int(chunk.blocks) * blockSize)!
                group.addTask { try await self.writeChunk(lba: chunk.lba, data: slice, fua: fua) }
            }
            try await group.waitForAll()
        }
    }

    public func flush() async throws {
        try Self.check(try await submit(.flush(nsid: namespaceID)))
    }

    /// Any I/O command (NSID as given), with failover. The completion's status is returned as is
    /// unless it is a path status (SCT 3), which fails over; transport loss fails over too.
    public func submit(_ command: SubmissionQueueEntry, data: ByteBuffer? = nil, readLength: Int = 0) async throws -> CommandCompletion {
        var attempts = 0
        var waiting = false
        defer { if waiting { queued.subtract(1, ordering: .relaxed) } }
        while true {
            try Task.checkCancellation()
            guard !closed.load(ordering: .acquiring) else { throw MultipathError.closed }
            let generation = shared.signal.generation
            switch choose() {
            case .path(let path, let controller):
                path.inFlight.add(1, ordering: .relaxed)
                let result: Result<CommandCompletion, any Error>
                do {
                    result = .success(try await controller.submitIO(command, data: data, readLength: readLength).get())
                } catch {
                    result = .failure(error)
                }
                path.inFlight.subtract(1, ordering: .relaxed)
                switch result {
                case .success(let completion):
                    path.completed.add(1, ordering: .relaxed)
                    guard case .failover = FailoverDisposition.of(completion.entry.status) else { return completion }
                    path.pathStatusFailed(completion.entry.status, on: controller)
                case .failure(NVMeHostError.queueFull):
                    try await Task.sleep(for: .milliseconds(1))
                    continue
                case .failure(let error):
                    guard case .failover = FailoverDisposition.of(error) else { throw error }
                    logger.info("I/O failed on \(path.address), failing over: \(error)")
                    path.session.controllerFailed(controller, reason: "\(error)")
                }
                attempts += 1
                // Fail over at once; back off only when every path has failed it in a row.
                if attempts >= members.count {
                    try await Task.sleep(for: .milliseconds(min(250, 5 << min(attempts - members.count, 6))))
                }
            case .wait:
                if !waiting {
                    guard queued.add(1, ordering: .relaxed).newValue <= sessionOptions.maxQueuedIO else {
                        queued.subtract(1, ordering: .relaxed)
                        throw MultipathError.queueFull
                    }
                    waiting = true
                }
                await shared.signal.wait(after: generation)
            case .fail:
                throw MultipathError.noPathAvailable(paths.map(\.description).joined(separator: "; "))
            }
        }
    }

    /// An admin command on one live path (a usable one if any), waiting while no path is live but
    /// one may come back. Never replayed on another path: a failure is thrown.
    public func adminCommand(_ command: SubmissionQueueEntry, data: ByteBuffer? = nil, readLength: Int = 0) async throws -> CommandCompletion {
        while true {
            try Task.checkCancellation()
            guard !closed.load(ordering: .acquiring) else { throw MultipathError.closed }
            let generation = shared.signal.generation
            let statuses = members.map { ($0, $0.session.status) }
            let live = statuses.filter { $0.1.controller != nil }
            if let (path, status) = live.first(where: { $0.0.candidate($0.1).isUsable }) ?? live.first {
                let controller = status.controller!
                do {
                    return try await controller.admin.submit(command, data: data, readLength: readLength, timeout: options.adminTimeout).get()
                } catch {
                    if case .failover = FailoverDisposition.of(error) {
                        path.session.controllerFailed(controller, reason: "\(error)")
                    }
                    throw error
                }
            }
            guard statuses.contains(where: { $0.0.candidate($0.1).isAvailable }) else {
                throw MultipathError.noPathAvailable(paths.map(\.description).joined(separator: "; "))
            }
            await shared.signal.wait(after: generation)
        }
    }

    /// Shuts every path down (orderly) and fails waiting I/O with ``MultipathError/closed``.
    public func close() async {
        guard !closed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        ticker.cancel()
        shared.signal.bump()
        await withTaskGroup(of: Void.self) { group in
            for path in members { group.addTask { await path.close() } }
        }
    }

    // MARK: Internals

    private enum Choice {
        case path(MultipathPath, NVMeController)
        case wait
        case fail
    }

    private func choose() -> Choice {
        let statuses = members.map { $0.session.status }
        let candidates = zip(members, statuses).map { $0.candidate($1) }
        let choice = selector.withLock { $0.select(candidates) }
        switch choice {
        case .path(let i):
            // The session may have moved on since the snapshot; then try again.
            guard let controller = statuses[i].controller else { return .wait }
            return .path(members[i], controller)
        case .wait: return .wait
        case .fail: return .fail
        }
    }

    private func readChunk(lba: UInt64, blocks: UInt32) async throws -> ByteBuffer {
        let completion = try await submit(.read(nsid: namespaceID, lba: lba, blocks: blocks, blockSize: blockSize),
                                          readLength: Int(blocks) * blockSize)
        try Self.check(completion)
        return completion.data
    }

    private func writeChunk(lba: UInt64, data: ByteBuffer, fua: Bool) async throws {
        let blocks = UInt32(data.readableBytes / blockSize)
        try Self.check(try await submit(.write(nsid: namespaceID, lba: lba, blocks: blocks, fua: fua), data: data))
    }

    private static func check(_ completion: CommandCompletion) throws {
        guard completion.entry.status.isSuccess else {
            throw NVMeHostError.status(completion.entry.status, commandID: completion.entry.commandID)
        }
    }

    private func checkRange(lba: UInt64, blocks: UInt64) throws {
        let (end, overflow) = lba.addingReportingOverflow(blocks)
        guard blocks > 0, !overflow, end <= blockCount else {
            throw NVMeHostError.invalidArgument("blocks \(lba)+\(blocks) outside the namespace (\(blockCount) blocks)")
        }
    }

    private func split(lba: UInt64, blocks: UInt64) -> [(lba: UInt64, blocks: UInt32)] {
        let most = UInt64(maxBlocksPerCommand)
        precondition(most > 0)
        var chunks: [(lba: UInt64, blocks: UInt32)] = []
        var at = lba
        while at < lba + blocks {
            let n = min(most, lba + blocks - at)
            chunks.append((at, UInt32(n)))
            at += n
        }
        return chunks
    }
}
