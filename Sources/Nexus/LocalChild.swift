import NIOCore
import NVMe
import NVMeTarget
import Storage
import Synchronization

/// A ``ChildDevice`` over a replica this io-engine serves itself: namespace 1 of its subsystem
/// `nqn.2026-11.io.halyard:replica:<uuid>` on this process's ``NVMeTCPTarget``, reached without a
/// connection but through the very gate every NVMe/TCP queue of that namespace passes (NVMe base
/// spec 2.0 §8.19, Sources/NVMeTarget/NamespaceReservations.swift):
///
/// - every I/O is admitted by `namespace.reservations.admit(host:isWrite:)` as the nexus's host ID
///   (Read is read-type; Write, Write Zeroes, Dataset Management and Flush are write-type, as on
///   the wire) and released once its device call has completed — so a remote nexus's Preempt and
///   Abort fences this nexus exactly as it would a remote one: it drains this child's admitted
///   commands and refuses the next;
/// - reservation commands run as ``ReservationState/Request``s through
///   `namespace.reservations.execute(_:by:on:)` (the same requests the target builds from the
///   commands' dwords), Report answers from the committed state;
/// - notices come from a notice observer on the namespace: "Registration Preempted" for this host
///   is ``ChildNotice/registrationPreempted``, the other kinds ``ChildNotice/reservationReleased``.
///
/// Error statuses map as for a remote child (Reservation Conflict → ``ChildIOError/reservationConflict``,
/// device failures → ``ChildIOError/status(_:)`` with the status the target would answer).
public final class LocalChild: ChildDevice {
    public let uri: String
    public let namespace: Namespace
    /// The nexus's host ID, as the reservation gate knows hosts.
    public let hostID: HostIdentifier
    /// Where device calls and reservation commands complete.
    public let eventLoop: any EventLoop
    public let notices: AsyncStream<ChildNotice>
    private let noticeSink: AsyncStream<ChildNotice>.Continuation
    private let state = Mutex(State())

    private struct State {
        var closed = false
        var observer: UInt64?
    }

    public var blockSize: Int { namespace.blockSize }
    public var blockCount: UInt64 { namespace.blockCount }

    private init(uri: String, namespace: Namespace, hostID: HostIdentifier, eventLoop: any EventLoop) {
        self.uri = uri
        self.namespace = namespace
        self.hostID = hostID
        self.eventLoop = eventLoop
        (notices, noticeSink) = AsyncStream.makeStream(of: ChildNotice.self, bufferingPolicy: .unbounded)
    }

    deinit {
        if let id = state.withLock({ $0.observer }) { namespace.reservations.removeNoticeObserver(id) }
        noticeSink.finish()
    }

    /// A child over `namespace` (namespace 1 of the replica's subsystem) known by `uri`, acting as
    /// the host `hostID` (the nexus's host ID). Throws ``ChildIOError/invalidRequest(_:)`` for a
    /// malformed URI.
    public static func open(namespace: Namespace, uri: String, hostID: HostIdentifier,
                            eventLoop: any EventLoop) throws(ChildIOError) -> LocalChild {
        _ = try ChildURI(parsing: uri)
        let child = LocalChild(uri: uri, namespace: namespace, hostID: hostID, eventLoop: eventLoop)
        let id = namespace.reservations.addNoticeObserver { [weak child] notices in child?.deliver(notices) }
        child.state.withLock { $0.observer = id }
        return child
    }

    private func deliver(_ notices: [ReservationState.Notice]) {
        for notice in notices where notice.hostID == hostID {
            noticeSink.yield(notice.type == .registrationPreempted ? .registrationPreempted : .reservationReleased)
        }
    }

    // MARK: I/O

    private func checkOpen() throws(ChildIOError) {
        if state.withLock({ $0.closed }) { throw .closed }
    }

    private func check(lba: UInt64, blocks: UInt64) throws(ChildIOError) {
        let (end, overflow) = lba.addingReportingOverflow(blocks)
        guard blocks > 0, !overflow, end <= blockCount else {
            throw .invalidRequest("blocks \(lba)+\(blocks) outside the child's \(blockCount) blocks")
        }
    }

    /// Admits one command through the namespace's reservation gate, runs `operation` on the event
    /// loop, and gives the admission back once it has completed.
    private func admitted<T: Sendable>(write: Bool,
                                       _ operation: @escaping @Sendable () -> EventLoopFuture<T>) async throws(ChildIOError) -> T {
        try checkOpen()
        let reservations = namespace.reservations
        let token: NamespaceReservations.Token
        switch reservations.admit(host: hostID, isWrite: write) {
        case .admitted(let t): token = t
        case .denied(let status): throw ChildIOError.childError(status: status)
        }
        let future = eventLoop.flatSubmit(operation).always { _ in reservations.release(token) }
        do {
            return try await future.get()
        } catch {
            throw Self.deviceFailure(error)
        }
    }

    private static func deviceFailure(_ error: any Error) -> ChildIOError {
        if let e = error as? ChildIOError { return e }
        if error is EventLoopError { return .unreachable("event loop: \(error)") }
        return ChildIOError.childError(status: NVMeStatus(deviceError: error))
    }

    public func read(lba: UInt64, blocks: UInt32) async throws(ChildIOError) -> ByteBuffer {
        try check(lba: lba, blocks: UInt64(blocks))
        let device = namespace.device, loop = eventLoop
        return try await admitted(write: false) { device.read(lba: lba, blocks: blocks, on: loop) }
    }

    public func write(lba: UInt64, data: ByteBuffer, fua: Bool) async throws(ChildIOError) {
        guard data.readableBytes > 0, data.readableBytes % blockSize == 0 else {
            throw .invalidRequest("\(data.readableBytes) bytes is not a whole number of \(blockSize)-byte blocks")
        }
        try check(lba: lba, blocks: UInt64(data.readableBytes / blockSize))
        let device = namespace.device, loop = eventLoop
        try await admitted(write: true) { device.write(lba: lba, data: data, fua: fua, on: loop) }
    }

    public func writeZeroes(lba: UInt64, blocks: UInt32, deallocate: Bool) async throws(ChildIOError) {
        try check(lba: lba, blocks: UInt64(blocks))
        let device = namespace.device, loop = eventLoop
        try await admitted(write: true) {
            device.writeZeroes(lba: lba, blocks: UInt64(blocks), deallocate: deallocate, fua: false, on: loop)
        }
    }

    public func deallocate(lba: UInt64, blocks: UInt32) async throws(ChildIOError) {
        try check(lba: lba, blocks: UInt64(blocks))
        let device = namespace.device, loop = eventLoop
        try await admitted(write: true) { device.deallocate(lba: lba, blocks: UInt64(blocks), on: loop) }
    }

    public func flush() async throws(ChildIOError) {
        let device = namespace.device, loop = eventLoop
        try await admitted(write: true) { device.flush(on: loop) }
    }

    // MARK: Callback I/O path

    /// Admits one command like ``admitted(write:_:)`` and runs `operation` on `eventLoop` (the
    /// caller's loop: no thread hop when called there); `completion` gets the device's result,
    /// after the admission is given back.
    private func admittedNow<T: Sendable>(write: Bool, on eventLoop: any EventLoop,
                                          _ operation: @escaping @Sendable (@escaping (Result<T, any Error>) -> Void) -> Void,
                                          completion: @escaping @Sendable (Result<T, ChildIOError>) -> Void) {
        if state.withLock({ $0.closed }) { return completion(.failure(.closed)) }
        let reservations = namespace.reservations
        let token: NamespaceReservations.Token
        switch reservations.admit(host: hostID, isWrite: write) {
        case .admitted(let t): token = t
        case .denied(let status): return completion(.failure(ChildIOError.childError(status: status)))
        }
        let run: @Sendable () -> Void = {
            operation { result in
                reservations.release(token)
                completion(result.mapError { Self.deviceFailure($0) })
            }
        }
        if eventLoop.inEventLoop { run() } else { eventLoop.execute(run) }
    }

    public func submitWrite(lba: UInt64, data: ByteBuffer, fua: Bool, on eventLoop: any EventLoop,
                            completion: @escaping @Sendable (ChildIOError?) -> Void) {
        guard data.readableBytes > 0, data.readableBytes % blockSize == 0 else {
            return completion(.invalidRequest("\(data.readableBytes) bytes is not a whole number of \(blockSize)-byte blocks"))
        }
        do {
            try check(lba: lba, blocks: UInt64(data.readableBytes / blockSize))
        } catch {
            return completion(error)
        }
        let device = namespace.device
        admittedNow(write: true, on: eventLoop, { done in
            device.write(lba: lba, data: data, fua: fua, on: eventLoop, completion: done)
        }, completion: { (result: Result<Void, ChildIOError>) in
            if case .failure(let error) = result { completion(error) } else { completion(nil) }
        })
    }

    public func submitRead(lba: UInt64, blocks: UInt32, on eventLoop: any EventLoop,
                           completion: @escaping @Sendable (Result<ByteBuffer, ChildIOError>) -> Void) {
        do {
            try check(lba: lba, blocks: UInt64(blocks))
        } catch {
            return completion(.failure(error))
        }
        let device = namespace.device
        admittedNow(write: false, on: eventLoop, { done in
            device.read(lba: lba, blocks: blocks, on: eventLoop, completion: done)
        }, completion: completion)
    }

    // MARK: Reservations

    private func run(_ request: ReservationState.Request) async throws(ChildIOError) -> NVMeStatus {
        try checkOpen()
        do {
            return try await namespace.reservations.execute(request, by: hostID, on: eventLoop).get().status
        } catch {
            throw .unreachable("reservation command not run: \(error)")
        }
    }

    private func runChecked(_ request: ReservationState.Request) async throws(ChildIOError) {
        let status = try await run(request)
        guard status.isSuccess else { throw ChildIOError.childError(status: status) }
    }

    public func register(key: UInt64) async throws(ChildIOError) {
        let status = try await run(.register(ReservationRegisterCommand(action: .register),
                                             ReservationRegisterData(currentKey: 0, newKey: key)))
        if status.isReservationConflict {
            // Registered already, with another key: replace it whatever it is.
            try await runChecked(.register(ReservationRegisterCommand(action: .replace, ignoreExistingKey: true),
                                           ReservationRegisterData(currentKey: 0, newKey: key)))
        } else if !status.isSuccess {
            throw ChildIOError.childError(status: status)
        }
    }

    public func acquire(key: UInt64, type: ReservationType, preempting: UInt64?) async throws(ChildIOError) {
        let command = ReservationAcquireCommand(action: preempting == nil ? .acquire : .preemptAndAbort, type: type)
        try await runChecked(.acquire(command, ReservationAcquireData(currentKey: key, preemptKey: preempting ?? 0)))
    }

    public func release(key: UInt64, type: ReservationType) async throws(ChildIOError) {
        try await runChecked(.release(ReservationReleaseCommand(action: .release, type: type), ReservationReleaseData(currentKey: key)))
    }

    public func reservationReport() async throws(ChildIOError) -> ReservationStatus {
        try checkOpen()
        if namespace.reservations.offlineReason != nil { throw .status(.namespaceNotReady) }
        return namespace.reservations.state.status
    }

    // MARK: Allocation map, close

    public func allocatedRanges() async throws(ChildIOError) -> [Range<UInt64>]? {
        try checkOpen()
        do {
            return try namespace.device.reportedAllocatedBlockRanges()
        } catch {
            throw Self.deviceFailure(error)
        }
    }

    public func close() async {
        let observer: UInt64?? = state.withLock { s in
            guard !s.closed else { return nil }
            s.closed = true
            defer { s.observer = nil }
            return .some(s.observer)
        }
        guard let observer else { return }
        if let observer { namespace.reservations.removeNoticeObserver(observer) }
        noticeSink.finish()
    }
}
