import NVMe

/// One namespace's reservation state as a pure value (NVMe base spec 2.0 §8.19; the byte-level
/// rules are in research/nvme-tcp.md §7): registrants keyed by 128-bit host ID (every path of a
/// host shares its registration), the reservation (type and holder), the generation counter and
/// the Persist Through Power Loss flag.
///
/// Every transition is in ``applying(_:by:)``: it returns the status, the state after, and the
/// effects the caller carries out (hosts preempted, notices, whether to fence). A failed command
/// never changes anything.
///
/// Decisions where the spec or its implementations leave room:
/// - **Replace with NRKEY 0 is an unregister.** The Linux host sends it for the block layer's
///   `pr_register(old, 0)`, whose meaning (as in SCSI) is "unregister". nvmet instead keeps a
///   registrant with key 0 — one that may still write under a Registrants Only reservation and that
///   no Preempt can name (PRKEY 0 means something else) — which is the opposite of what the host
///   asked for and a fencing hole. So a key-0 registrant never exists here: Replace with 0 removes
///   the registration (with every effect of Unregister), and Register with NRKEY 0 is Invalid
///   Field (as SPDK answers).
/// - IEKEY on Acquire/Release is Invalid Field (nvmet, SPDK); Release with another RTYPE than the
///   held one is Invalid Field (spec, SPDK); Preempt of types 1–4 with PRKEY 0 is Invalid Field.
/// - Preempt with a PRKEY no registrant holds is Reservation Conflict (nvmet).
public struct ReservationState: Hashable, Sendable {
    public struct Registrant: Hashable, Sendable {
        public var hostID: HostIdentifier
        /// Never 0.
        public var key: UInt64

        public init(hostID: HostIdentifier, key: UInt64) {
            self.hostID = hostID
            self.key = key
        }
    }

    public struct Reservation: Hashable, Sendable {
        public var type: ReservationType
        /// The holder for types 1–4; nil for types 5 and 6, where every registrant holds it.
        public var holder: HostIdentifier?

        public init(type: ReservationType, holder: HostIdentifier?) {
            self.type = type
            self.holder = type.allRegistrantsAreHolders ? nil : holder
        }
    }

    /// In registration order (the order a Report lists them).
    public private(set) var registrants: [Registrant]
    public private(set) var reservation: Reservation?
    /// GEN: u32, wraps.
    public private(set) var generation: UInt32
    public private(set) var persistThroughPowerLoss: Bool

    public init() {
        registrants = []
        reservation = nil
        generation = 0
        persistThroughPowerLoss = false
    }

    /// A state restored from storage; nil when it breaks an invariant (duplicate host, key 0, a
    /// holder that is not a registrant, a reservation without registrants).
    public init?(registrants: [Registrant], reservation: Reservation?, generation: UInt32, persistThroughPowerLoss: Bool) {
        self.registrants = registrants
        self.reservation = reservation
        self.generation = generation
        self.persistThroughPowerLoss = persistThroughPowerLoss
        guard invariantViolation == nil else { return nil }
    }

    // MARK: Queries

    public func registrant(_ host: HostIdentifier) -> Registrant? {
        registrants.first { $0.hostID == host }
    }

    public func isRegistrant(_ host: HostIdentifier) -> Bool {
        registrants.contains { $0.hostID == host }
    }

    /// Whether `host` holds the reservation (for types 5 and 6: is any registrant).
    public func isHolder(_ host: HostIdentifier) -> Bool {
        guard let r = reservation else { return false }
        return r.type.allRegistrantsAreHolders ? isRegistrant(host) : r.holder == host
    }

    /// The access matrix (NVMe base spec 2.0 §8.19.1, Figure 556; research §7.3): may `host` run a
    /// read-type (`write` false: Read, Compare) or write-type (Write, Write Zeroes, Dataset
    /// Management, Flush) command? Reservation Register and Report are never checked here.
    @inline(__always)
    public func allows(_ host: HostIdentifier, write: Bool) -> Bool {
        guard let r = reservation else { return true }
        if let holder = r.holder, holder == host { return true }
        let registered = isRegistrant(host)
        switch r.type {
        case .writeExclusive: return !write
        case .exclusiveAccess: return false
        case .writeExclusiveRegistrantsOnly, .writeExclusiveAllRegistrants: return registered || !write
        case .exclusiveAccessRegistrantsOnly, .exclusiveAccessAllRegistrants: return registered
        }
    }

    /// The Reservation Report structure (extended form; CNTLID FFFFh: registrations belong to hosts).
    public var status: ReservationStatus {
        ReservationStatus(
            generation: generation, type: reservation?.type, persistThroughPowerLoss: persistThroughPowerLoss,
            registrants: registrants.map {
                ReservationStatus.Registrant(controllerID: 0xFFFF, holdsReservation: isHolder($0.hostID), key: $0.key, hostID: $0.hostID)
            })
    }

    // MARK: Transitions

    /// A command against the state: the NVMe reservation commands and Set Features Reservation
    /// Persistence.
    public enum Request: Hashable, Sendable {
        case register(ReservationRegisterCommand, ReservationRegisterData)
        case acquire(ReservationAcquireCommand, ReservationAcquireData)
        case release(ReservationReleaseCommand, ReservationReleaseData)
        case setPersistence(Bool)
    }

    /// A notice a host's controllers get (Reservation Notification log page, §7.4).
    public struct Notice: Hashable, Sendable {
        public var hostID: HostIdentifier
        public var type: ReservationNotificationLogPage.NoticeType
    }

    /// What a command did.
    public struct Transition: Sendable {
        public var status: NVMeStatus
        /// The state after the command (the state before when it failed).
        public var state: ReservationState
        /// Hosts whose registration another host removed (Preempt, Preempt and Abort, Clear).
        public var preempted: [HostIdentifier] = []
        public var notices: [Notice] = []
        /// Preempt, Preempt and Abort or Clear succeeded: the command completes only after every
        /// command other hosts had admitted before it has finished (the fencing guarantee).
        public var fences = false
        /// Whether `state` differs from the state before.
        public var changed: Bool
    }

    /// Applies `request` from `host`. All transitions of the state machine are here and in the
    /// private helpers below, and nowhere else.
    public func applying(_ request: Request, by host: HostIdentifier) -> Transition {
        var next = self
        var effects = Effects()
        let status: NVMeStatus
        switch request {
        case .register(let command, let data):
            status = next.register(command, data, by: host, &effects)
        case .acquire(let command, let data):
            status = next.acquire(command, data, by: host, &effects)
        case .release(let command, let data):
            status = next.release(command, data, by: host, &effects)
        case .setPersistence(let on):
            next.persistThroughPowerLoss = on
            status = .success
        }
        guard status.isSuccess else { return Transition(status: status, state: self, changed: false) }
        assert(next.invariantViolation == nil, "reservation state invariant: \(next.invariantViolation ?? "")")
        return Transition(status: status, state: next, preempted: effects.preempted, notices: effects.notices,
                          fences: effects.fences, changed: next != self)
    }

    private struct Effects {
        var preempted: [HostIdentifier] = []
        var notices: [Notice] = []
        var fences = false

        mutating func notify(_ hosts: some Sequence<HostIdentifier>, _ type: ReservationNotificationLogPage.NoticeType) {
            notices += hosts.map { Notice(hostID: $0, type: type) }
        }
    }

    /// Reservation Register (§7.2 Register).
    private mutating func register(_ command: ReservationRegisterCommand, _ data: ReservationRegisterData,
                                   by host: HostIdentifier, _ effects: inout Effects) -> NVMeStatus {
        guard let action = command.action, let change = command.persistenceChange else { return .invalidField }
        let index = registrants.firstIndex { $0.hostID == host }
        let keyMatches = index.map { command.ignoreExistingKey || registrants[$0].key == data.currentKey } ?? false
        switch action {
        case .register:
            guard data.newKey != 0 else { return .invalidField }
            if let index {
                guard registrants[index].key == data.newKey else { return .reservationConflict }
            } else {
                registrants.append(Registrant(hostID: host, key: data.newKey))
            }
        case .unregister:
            guard keyMatches else { return .reservationConflict }
            removeOwnRegistration(host, &effects)
        case .replace:
            guard let index, keyMatches else { return .reservationConflict }
            if data.newKey == 0 {
                removeOwnRegistration(host, &effects)  // see the type's doc comment
            } else {
                registrants[index].key = data.newKey
            }
        }
        switch change {
        case .noChange: break
        case .clear: persistThroughPowerLoss = false
        case .set: persistThroughPowerLoss = true
        }
        generation &+= 1
        return .success
    }

    /// Reservation Acquire (§7.2 Acquire and the Preempt table).
    private mutating func acquire(_ command: ReservationAcquireCommand, _ data: ReservationAcquireData,
                                  by host: HostIdentifier, _ effects: inout Effects) -> NVMeStatus {
        guard !command.ignoreExistingKey, let action = command.action, let type = command.type else { return .invalidField }
        guard let own = registrant(host), own.key == data.currentKey else { return .reservationConflict }
        switch action {
        case .acquire:
            if let current = reservation {
                return isHolder(host) && current.type == type ? .success : .reservationConflict
            }
            reservation = Reservation(type: type, holder: host)
            return .success
        case .preempt, .preemptAndAbort:
            let status = preempt(type: type, preemptKey: data.preemptKey, by: host, &effects)
            if status.isSuccess {
                generation &+= 1
                effects.fences = true
            }
            return status
        }
    }

    private mutating func preempt(type: ReservationType, preemptKey: UInt64, by host: HostIdentifier,
                                  _ effects: inout Effects) -> NVMeStatus {
        guard let current = reservation else {
            // No reservation: unregister every registrant with PRKEY (the requester too, as nvmet).
            return removeRegistrants(withKey: preemptKey, sparing: nil, by: host, &effects) ? .success : .reservationConflict
        }
        if current.type.allRegistrantsAreHolders {
            if preemptKey == 0 {
                removeRegistrants(where: { $0.hostID != host }, by: host, &effects)
                reservation = Reservation(type: type, holder: host)
                return .success
            }
            return removeRegistrants(withKey: preemptKey, sparing: nil, by: host, &effects) ? .success : .reservationConflict
        }
        guard let holder = current.holder, let holderKey = registrant(holder)?.key else {
            assertionFailure("a type \(current.type.rawValue) reservation without a registered holder")
            return .internalError
        }
        if preemptKey == 0 { return .invalidField }
        if preemptKey == holderKey {
            if holder != host {
                removeRegistrants(withKey: preemptKey, sparing: host, by: host, &effects)
            }
            reservation = Reservation(type: type, holder: host)
            if current.type != type {
                effects.notify(registrants.map(\.hostID).filter { $0 != host }, .reservationReleased)
            }
            return .success
        }
        return removeRegistrants(withKey: preemptKey, sparing: nil, by: host, &effects) ? .success : .reservationConflict
    }

    /// Reservation Release (§7.2 Release).
    private mutating func release(_ command: ReservationReleaseCommand, _ data: ReservationReleaseData,
                                  by host: HostIdentifier, _ effects: inout Effects) -> NVMeStatus {
        guard !command.ignoreExistingKey, let action = command.action else { return .invalidField }
        guard let own = registrant(host), own.key == data.currentKey else { return .reservationConflict }
        switch action {
        case .release:
            guard let current = reservation, isHolder(host) else { return .success }  // nothing held: no-op
            guard command.rawType == current.type.rawValue else { return .invalidField }
            reservation = nil
            if current.type.registrantsHaveAccess {
                effects.notify(registrants.map(\.hostID).filter { $0 != host }, .reservationReleased)
            }
        case .clear:
            let others = registrants.map(\.hostID).filter { $0 != host }
            registrants = []
            reservation = nil
            generation &+= 1
            effects.preempted += others
            effects.notify(others, .reservationPreempted)
            effects.fences = true
        }
        return .success
    }

    /// `host` leaves (Unregister, or Replace with 0): a holder of types 1–4 releases the
    /// reservation (types 3 and 4 tell the remaining registrants); types 5 and 6 stay while any
    /// registrant remains.
    private mutating func removeOwnRegistration(_ host: HostIdentifier, _ effects: inout Effects) {
        registrants.removeAll { $0.hostID == host }
        guard let current = reservation else { return }
        if current.type.allRegistrantsAreHolders {
            if registrants.isEmpty { reservation = nil }
        } else if current.holder == host {
            reservation = nil
            if current.type.registrantsHaveAccess {
                effects.notify(registrants.map(\.hostID), .reservationReleased)
            }
        }
    }

    /// Removes registrants with `key` (except `sparing`); false when none matched.
    @discardableResult
    private mutating func removeRegistrants(withKey key: UInt64, sparing: HostIdentifier?, by host: HostIdentifier,
                                            _ effects: inout Effects) -> Bool {
        removeRegistrants(where: { $0.key == key && $0.hostID != sparing }, by: host, &effects)
    }

    /// Removes the matching registrants as preempted by `host`: each other host gets a
    /// Registration Preempted notice. A type 5/6 reservation ends with its last registrant; a
    /// removed type 1–4 holder is replaced by the caller.
    @discardableResult
    private mutating func removeRegistrants(where match: (Registrant) -> Bool, by host: HostIdentifier,
                                            _ effects: inout Effects) -> Bool {
        let removed = registrants.filter(match).map(\.hostID)
        guard !removed.isEmpty else { return false }
        registrants.removeAll(where: match)
        let others = removed.filter { $0 != host }
        effects.preempted += others
        effects.notify(others, .registrationPreempted)
        if registrants.isEmpty { reservation = nil }
        return true
    }

    /// nil when the invariants hold; else what is wrong.
    var invariantViolation: String? {
        if Set(registrants.map(\.hostID)).count != registrants.count { return "a host registered twice" }
        if registrants.contains(where: { $0.key == 0 }) { return "a registrant with key 0" }
        guard let r = reservation else { return nil }
        if registrants.isEmpty { return "a reservation without registrants" }
        if r.type.allRegistrantsAreHolders { return r.holder == nil ? nil : "a holder for an all-registrants type" }
        guard let holder = r.holder else { return "no holder for type \(r.type.rawValue)" }
        return isRegistrant(holder) ? nil : "a holder that is not a registrant"
    }
}
