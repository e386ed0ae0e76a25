import Logging
import NIOCore
import NVMe
import Synchronization

/// One path of a ``MultipathDevice`` as callers see it (Linux's hidden `nvmeNcXnM` disks).
public struct MultipathPathInfo: Hashable, Sendable, CustomStringConvertible {
    public var address: TransportAddress
    public var state: ControllerState
    /// The path's ANA state for the namespace (nil until first read).
    public var anaState: ANAState?
    /// An SCT 3 status came back; the ANA log is being re-read before the path is used again.
    public var anaPending: Bool
    public var controllerID: UInt16?
    /// Commands sent on this path and not completed yet.
    public var inFlight: Int
    /// Commands completed on this path (any status).
    public var completed: UInt64
    public var fastFailed: Bool
    /// I/O may be sent here now.
    public var isUsable: Bool
    public var lastError: String?

    public var description: String {
        "\(address) \(state)\(fastFailed ? " (fast-failed)" : "") ana=\(anaState.map { "\($0)" } ?? "-")\(anaPending ? " (pending)" : "")"
            + " cntlid=\(controllerID.map(String.init) ?? "-") inflight=\(inFlight) completed=\(completed)"
    }
}

/// Why a ``MultipathDevice`` refused or failed a request.
public enum MultipathError: Error, Hashable, Sendable, CustomStringConvertible {
    /// `connect`: no path came up (each path's error).
    case noPathConnected([String])
    /// `connect`: a path reports a different namespace identity (NGUID/UUID/EUI-64, size).
    case pathRefused(TransportAddress, String)
    /// I/O: every path is gone or has fast-failed.
    case noPathAvailable(String)
    /// Too much I/O is waiting for a path.
    case queueFull
    /// The device was closed.
    case closed

    public var description: String {
        switch self {
        case .noPathConnected(let errors): "no path connected: \(errors.joined(separator: "; "))"
        case .pathRefused(let a, let why): "path \(a) refused: \(why)"
        case .noPathAvailable(let why): "no path available: \(why)"
        case .queueFull: "too much I/O waiting for a path"
        case .closed: "multipath device closed"
        }
    }
}

/// The identity every path must report for the namespace (research/nvme-tcp.md §6.1).
struct NamespaceReference: Hashable, Sendable {
    var nguid: NGUID
    var eui64: EUI64
    var uuid: NamespaceUUID?
    var blockSize: Int
    var blockCount: UInt64

    /// Why `other` is not the same namespace, or nil if it is.
    func mismatch(_ other: NamespaceReference) -> String? {
        if other.nguid != nguid { return "NGUID \(other.nguid) differs from \(nguid)" }
        if other.uuid != uuid { return "UUID \(other.uuid.map { "\($0)" } ?? "none") differs from \(uuid.map { "\($0)" } ?? "none")" }
        if other.eui64 != eui64 { return "EUI-64 \(other.eui64) differs from \(eui64)" }
        if other.blockSize != blockSize || other.blockCount != blockCount {
            return "geometry \(other.blockCount)×\(other.blockSize) differs from \(blockCount)×\(blockSize)"
        }
        return nil
    }
}

/// What every path of one device shares: the namespace identity (set by the first path that
/// connects) and the change signal that wakes queued I/O.
final class MultipathShared: Sendable {
    let subsystemNQN: String
    let namespaceID: UInt32
    let signal = ChangeSignal()
    let reference = Mutex<NamespaceReference?>(nil)
    /// The smallest transfer any validated controller accepts (MDTS), in bytes.
    let maxTransferSize = Atomic<Int>(Int.max)

    init(subsystemNQN: String, namespaceID: UInt32) {
        self.subsystemNQN = subsystemNQN
        self.namespaceID = namespaceID
    }

    /// Admits a controller's view of the namespace: the first one defines it, later ones must match.
    func admit(_ ids: NamespaceReference, from address: TransportAddress) throws {
        try reference.withLock { reference in
            guard let existing = reference else {
                reference = ids
                return
            }
            if let why = existing.mismatch(ids) {
                throw ControllerSessionError.refused("\(address): namespace \(namespaceID) of \(subsystemNQN) is not the same namespace: \(why)")
            }
        }
    }
}

/// The per-path half of a ``MultipathDevice`` that the path's session calls back into: it
/// validates each new controller before it goes live, keeps the path's ANA state, and re-reads
/// the ANA log on an ANA-change event or an SCT 3 status.
final class MultipathPath: Sendable {
    let index: Int
    let address: TransportAddress
    let shared: MultipathShared
    let logger: Logger
    let inFlight = Atomic<Int>(0)
    let completed = Atomic<UInt64>(0)
    /// ANA re-reads and event followers; the device waits for them when it closes.
    let background = BackgroundTasks()
    private let closing = Atomic<Bool>(false)

    struct ANAView {
        var state: ANAState?
        var groupID: UInt32 = 0
        var pending = false
        var refreshing = false
        var refreshAgain = false
        /// The controller whose async events are being consumed (held, so identity is unambiguous).
        var eventsOf: NVMeController?
    }
    private let ana = Mutex(ANAView())
    /// Set once, right after init (the session's callbacks need this object first).
    private let sessionBox = Mutex<ControllerSession?>(nil)

    init(index: Int, address: TransportAddress, shared: MultipathShared, logger: Logger) {
        self.index = index
        self.address = address
        self.shared = shared
        var logger = logger
        logger[metadataKey: "path"] = "\(address)"
        self.logger = logger
    }

    var session: ControllerSession {
        sessionBox.withLock { $0! }
    }

    func attach(_ session: ControllerSession) {
        sessionBox.withLock {
            precondition($0 == nil, "path session attached twice")
            $0 = session
        }
    }

    var anaView: ANAView { ana.withLock { $0 } }

    func candidate(_ status: ControllerSessionStatus) -> PathCandidate {
        let view = anaView
        return PathCandidate(state: status.state, fastFailed: status.fastFailed, anaState: view.state, anaPending: view.pending,
                             inFlight: inFlight.load(ordering: .relaxed))
    }

    func info() -> MultipathPathInfo {
        let status = session.status
        let c = candidate(status)
        return MultipathPathInfo(address: address, state: status.state, anaState: c.anaState, anaPending: c.anaPending,
                                 controllerID: status.controllerID, inFlight: c.inFlight,
                                 completed: completed.load(ordering: .relaxed), fastFailed: status.fastFailed,
                                 isUsable: c.isUsable, lastError: status.lastError)
    }

    // MARK: Session callbacks

    /// Runs on every new controller of this path before it goes live: the namespace must be the
    /// one every other path shows (else the path is refused), and the ANA state is read.
    func validate(_ controller: NVMeController) async throws {
        let nsid = shared.namespaceID
        let ns: IdentifyNamespace
        do {
            ns = try await controller.identifyNamespace(nsid)
        } catch NVMeHostError.status(let status, _) where !status.isPathError {
            throw ControllerSessionError.refused("\(address): Identify Namespace \(nsid) failed: \(status)")
        }
        guard ns.nsze > 0 else {
            throw ControllerSessionError.refused("\(address): namespace \(nsid) is not active")
        }
        guard let format = ns.formattedLBAFormat, format.dataSize >= 512 else {
            throw ControllerSessionError.refused("\(address): namespace \(nsid) has no usable LBA format")
        }
        // CNS 03h may be missing on old targets; then Identify Namespace's NGUID/EUI-64 must do.
        let descriptors = try? await controller.namespaceDescriptors(nsid)
        let ids = NamespaceReference(nguid: descriptors?.nguid ?? ns.nguid, eui64: descriptors?.eui64 ?? ns.eui64,
                                     uuid: descriptors?.uuid, blockSize: format.dataSize, blockCount: ns.nsze)
        guard !ids.nguid.isZero || !ids.eui64.isZero || ids.uuid != nil else {
            throw ControllerSessionError.refused("\(address): namespace \(nsid) has no NGUID, EUI-64 or UUID to match paths on")
        }
        try shared.admit(ids, from: address)
        shared.maxTransferSize.min(controller.maxTransferSize, ordering: .relaxed)
        ana.withLock { $0.groupID = ns.anagrpid }
        try await readANA(controller)
    }

    /// Every session transition: wake queued I/O; on a new live controller, follow its events.
    func sessionChanged(_ status: ControllerSessionStatus) {
        if let controller = status.controller {
            let isNew = ana.withLock { view -> Bool in
                guard view.eventsOf !== controller else { return false }
                view.eventsOf = controller
                return true
            }
            if isNew && !closing.load(ordering: .acquiring) {
                background.spawn { await self.followEvents(of: controller) }
            }
        }
        shared.signal.bump()
    }

    /// Asynchronous events of one controller, until it goes away: an ANA change re-reads the log.
    private func followEvents(of controller: NVMeController) async {
        for await event in controller.asyncEvents {
            let logPage = UInt8(truncatingIfNeeded: event >> 16)
            logger.debug("asynchronous event 0x\(String(event, radix: 16))")
            if logPage == LogPageIdentifier.ana.rawValue {
                refreshANA(on: controller)
            }
        }
    }

    // MARK: ANA

    /// An SCT 3 status came back on this path: stop using it until the ANA log says otherwise.
    func pathStatusFailed(_ status: NVMeStatus, on controller: NVMeController) {
        logger.notice("path status \(status); re-reading the ANA log")
        ana.withLock { $0.pending = true }
        refreshANA(on: controller)
    }

    /// Re-reads the ANA log of `controller` (one read at a time; a request during a read causes
    /// one more read after it).
    func refreshANA(on controller: NVMeController) {
        let start = ana.withLock { view -> Bool in
            if view.refreshing {
                view.refreshAgain = true
                return false
            }
            view.refreshing = true
            return true
        }
        guard start else { return }
        guard !closing.load(ordering: .acquiring) else {
            ana.withLock { $0.refreshing = false }
            return
        }
        background.spawn { [self] in
            while true {
                do {
                    try await readANA(controller)
                } catch {
                    // The controller is broken: its session reconnects and re-reads on the way up.
                    logger.warning("cannot read the ANA log: \(error)")
                }
                let again = ana.withLock { view -> Bool in
                    if view.refreshAgain {
                        view.refreshAgain = false
                        return true
                    }
                    view.refreshing = false
                    return false
                }
                if !again { break }
            }
            shared.signal.bump()
        }
    }

    /// Closes the path's session, then waits for its background work.
    func close() async {
        closing.store(true, ordering: .releasing)
        await session.close()
        ana.withLock { $0.eventsOf = nil }
        await background.drain()
    }

    private func readANA(_ controller: NVMeController) async throws {
        // Without ANA reporting (CMIC bit 3) every path counts as optimized.
        guard controller.identify.cmic & 0x08 != 0 else {
            setANA(.optimized, group: nil)
            return
        }
        let log = try await controller.anaLogPage()
        let nsid = shared.namespaceID
        let groupID = anaView.groupID
        let group = log.groups.first(where: { $0.namespaceIDs.contains(nsid) }) ?? log.groups.first(where: { $0.anaGroupID == groupID })
        guard let group else {
            logger.warning("namespace \(nsid) is in no ANA group of the log; path unusable")
            setANA(nil, group: nil)
            return
        }
        logger.debug("ANA log read: group \(group.anaGroupID) \(group.state), change count \(log.changeCount)")
        setANA(group.state, group: group.anaGroupID)
    }

    private func setANA(_ state: ANAState?, group: UInt32?) {
        let old = ana.withLock { view -> ANAState? in
            let old = view.state
            view.state = state
            if let group { view.groupID = group }
            view.pending = false
            return old
        }
        if old != state {
            logger.info("ANA state \(state.map { "\($0)" } ?? "unknown")")
        }
        shared.signal.bump()
    }
}

/// Wakes I/O waiting for a path whenever something about the paths changed (a session
/// transition, an ANA update, the device's periodic tick).
final class ChangeSignal: Sendable {
    private struct State {
        var generation: UInt64 = 0
        var nextID: UInt64 = 0
        var waiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
    }
    private let state = Mutex(State())

    var generation: UInt64 { state.withLock { $0.generation } }

    func bump() {
        let waiters = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            s.generation &+= 1
            defer { s.waiters = [:] }
            return Array(s.waiters.values)
        }
        for w in waiters { w.resume() }
    }

    /// Returns once the generation differs from `generation` (at once if it already does), or
    /// when the task is cancelled.
    func wait(after generation: UInt64) async {
        let id = state.withLock { s -> UInt64 in
            s.nextID += 1
            return s.nextID
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                let now = state.withLock { s -> Bool in
                    if s.generation != generation || Task.isCancelled { return true }
                    s.waiters[id] = c
                    return false
                }
                if now { c.resume() }
            }
        } onCancel: {
            let c = state.withLock { $0.waiters.removeValue(forKey: id) }
            c?.resume()
        }
    }
}
