import NVMe
@testable import NVMeTarget
import Testing

/// The reservation state machine on its own (NVMe base spec 2.0 §8.19; research/nvme-tcp.md §7).
/// Expected outcomes are written out from the spec's tables, never computed from the code's.
@Suite struct ReservationStateTests {
    static let hosts: [Character: HostIdentifier] = [
        "A": HostIdentifier(bytes: [UInt8](repeating: 0xAA, count: 16)),
        "B": HostIdentifier(bytes: [UInt8](repeating: 0xBB, count: 16)),
        "C": HostIdentifier(bytes: [UInt8](repeating: 0xCC, count: 16)),
    ]
    /// Each host registers with its own key: A → 0xA, B → 0xB, C → 0xC.
    static let keys: [Character: UInt64] = ["A": 0xA, "B": 0xB, "C": 0xC]

    static func host(_ c: Character) -> HostIdentifier { hosts[c] ?? .zero }

    static func register(_ s: ReservationState, _ who: Character, key: UInt64? = nil) -> ReservationState {
        let t = s.applying(.register(ReservationRegisterCommand(action: .register),
                                     ReservationRegisterData(currentKey: 0, newKey: key ?? keys[who] ?? 0)), by: host(who))
        #expect(t.status == .success, "register \(who)")
        return t.state
    }

    static func acquire(_ s: ReservationState, _ who: Character, _ type: UInt8, action: ReservationAcquireCommand.Action = .acquire,
                        key: UInt64? = nil, preemptKey: UInt64 = 0) -> ReservationState.Transition {
        var command = ReservationAcquireCommand(action: action, type: .writeExclusive)
        command.rawType = type
        return s.applying(.acquire(command, ReservationAcquireData(currentKey: key ?? keys[who] ?? 0, preemptKey: preemptKey)), by: host(who))
    }

    static func release(_ s: ReservationState, _ who: Character, _ type: UInt8, clear: Bool = false, key: UInt64? = nil) -> ReservationState.Transition {
        var command = ReservationReleaseCommand(action: clear ? .clear : .release, type: nil)
        command.rawType = type
        return s.applying(.release(command, ReservationReleaseData(currentKey: key ?? keys[who] ?? 0)), by: host(who))
    }

    /// "regs=ABC type=2 holder=A" ("type=- holder=-" without a reservation, "holder=*" for types 5/6).
    static func describe(_ s: ReservationState) -> String {
        let name: (HostIdentifier) -> String = { id in hosts.first { $0.value == id }.map { String($0.key) } ?? "?" }
        let regs = s.registrants.map { name($0.hostID) }.sorted().joined()
        guard let r = s.reservation else { return "regs=\(regs) type=- holder=-" }
        return "regs=\(regs) type=\(r.type.rawValue) holder=\(r.holder.map(name) ?? "*")"
    }

    /// A, B, C registered; A holds a reservation of `type` (none when nil).
    static func scenario(type: UInt8?) -> ReservationState {
        var s = ReservationState()
        for h in "ABC" { s = register(s, h) }
        if let type {
            let t = acquire(s, "A", type)
            #expect(t.status == .success)
            s = t.state
        }
        return s
    }

    // MARK: Access matrix

    /// NVMe base spec 2.0 Figure 556, "Command behavior in the presence of a reservation", read
    /// (Read) and write (Write) columns, transcribed by hand. A = allowed, C = Reservation Conflict.
    /// Columns: holder read/write, registrant read/write, non-registrant read/write. For types 5
    /// and 6 every registrant is a holder.
    static let specAccessMatrix: [(type: UInt8, row: String)] = [
        (1, "AA AC AC"),  // Write Exclusive
        (2, "AA CC CC"),  // Exclusive Access
        (3, "AA AA AC"),  // Write Exclusive - Registrants Only
        (4, "AA AA CC"),  // Exclusive Access - Registrants Only
        (5, "AA AA AC"),  // Write Exclusive - All Registrants
        (6, "AA AA CC"),  // Exclusive Access - All Registrants
    ]

    @Test("access matrix: every type × role × read/write", arguments: specAccessMatrix)
    func accessMatrix(type: UInt8, row: String) {
        // A holds, B is a registrant, C is not registered.
        var s = Self.scenario(type: type)
        let t = s.applying(.register(ReservationRegisterCommand(action: .unregister), .init(currentKey: 0xC, newKey: 0)), by: Self.host("C"))
        #expect(t.status == .success)
        s = t.state
        let expected = Array(row.filter { $0 != " " })
        let roles: [(Character, String)] = [("A", "holder"), ("B", "registrant"), ("C", "non-registrant")]
        var index = 0
        for (host, role) in roles {
            for write in [false, true] {
                let allowed = s.allows(Self.host(host), write: write)
                #expect(allowed == (expected[index] == "A"), "type \(type) \(role) \(write ? "write" : "read")")
                index += 1
            }
        }
    }

    @Test func noReservationAllowsEveryone() {
        let s = Self.scenario(type: nil)
        for h in "ABC" { #expect(s.allows(Self.host(h), write: true) && s.allows(Self.host(h), write: false)) }
        #expect(ReservationState().allows(Self.host("A"), write: true))
    }

    // MARK: Preempt (research/nvme-tcp.md §7.2 table)

    struct PreemptCase: Sendable, CustomTestStringConvertible {
        var current: UInt8?
        var requester: Character
        var preemptKey: UInt64
        var newType: UInt8
        var status: NVMeStatus
        var after: String
        var preempted: String
        var testDescription: String { "type \(current.map(String.init) ?? "none"), \(requester) preempts key \(preemptKey) → \(after)" }
    }

    /// A, B, C registered with keys 0xA, 0xB, 0xC; A holds `current`.
    static let preemptTable: [PreemptCase] = [
        // No reservation: registrants with PRKEY are unregistered; none matched → Conflict.
        .init(current: nil, requester: "B", preemptKey: 0xC, newType: 1, status: .success, after: "regs=AB type=- holder=-", preempted: "C"),
        .init(current: nil, requester: "B", preemptKey: 0xD, newType: 1, status: .reservationConflict, after: "regs=ABC type=- holder=-", preempted: ""),
        // All-registrants type, PRKEY 0: requester becomes holder with RTYPE, every other unregistered.
        .init(current: 5, requester: "B", preemptKey: 0, newType: 2, status: .success, after: "regs=B type=2 holder=B", preempted: "AC"),
        .init(current: 6, requester: "B", preemptKey: 0, newType: 6, status: .success, after: "regs=B type=6 holder=*", preempted: "AC"),
        // All-registrants type, PRKEY ≠ 0: those registrants unregistered, reservation stays.
        .init(current: 6, requester: "B", preemptKey: 0xC, newType: 6, status: .success, after: "regs=AB type=6 holder=*", preempted: "C"),
        .init(current: 5, requester: "B", preemptKey: 0xD, newType: 5, status: .reservationConflict, after: "regs=ABC type=5 holder=*", preempted: ""),
        // Types 1–4, the holder preempts its own key: the type changes.
        .init(current: 1, requester: "A", preemptKey: 0xA, newType: 3, status: .success, after: "regs=ABC type=3 holder=A", preempted: ""),
        // Types 1–4, PRKEY = holder's key: requester becomes holder, the old holder is unregistered.
        .init(current: 2, requester: "B", preemptKey: 0xA, newType: 2, status: .success, after: "regs=BC type=2 holder=B", preempted: "A"),
        .init(current: 4, requester: "C", preemptKey: 0xA, newType: 1, status: .success, after: "regs=BC type=1 holder=C", preempted: "A"),
        // Types 1–4, PRKEY ≠ holder's key, ≠ 0: those registrants unregistered, reservation unchanged.
        .init(current: 3, requester: "B", preemptKey: 0xC, newType: 3, status: .success, after: "regs=AB type=3 holder=A", preempted: "C"),
        .init(current: 4, requester: "B", preemptKey: 0xD, newType: 4, status: .reservationConflict, after: "regs=ABC type=4 holder=A", preempted: ""),
        // Types 1–4, PRKEY 0: Invalid Field.
        .init(current: 2, requester: "B", preemptKey: 0, newType: 2, status: .invalidField, after: "regs=ABC type=2 holder=A", preempted: ""),
    ]

    @Test("preempt rules", arguments: preemptTable)
    func preempt(_ c: PreemptCase) {
        let before = Self.scenario(type: c.current)
        for action in [ReservationAcquireCommand.Action.preempt, .preemptAndAbort] {
            let t = Self.acquire(before, c.requester, c.newType, action: action, preemptKey: c.preemptKey)
            #expect(t.status == c.status)
            #expect(Self.describe(t.state) == c.after)
            let preempted = t.preempted.map { id in Self.hosts.first { $0.value == id }.map { String($0.key) } ?? "?" }.sorted().joined()
            #expect(preempted == c.preempted)
            #expect(Set(t.notices.filter { $0.type == .registrationPreempted }.map(\.hostID)) == Set(t.preempted))
            #expect(t.fences == c.status.isSuccess)
            #expect(t.state.generation == before.generation &+ (c.status.isSuccess ? 1 : 0))
        }
    }

    // MARK: Register

    @Test func registerRules() {
        var s = ReservationState()
        let a = Self.host("A")
        func reg(_ action: UInt8, iekey: Bool = false, cptpl: UInt8 = 0, crkey: UInt64 = 0, nrkey: UInt64) -> NVMeStatus {
            var c = ReservationRegisterCommand(action: .register)
            c.rawAction = action
            c.ignoreExistingKey = iekey
            c.rawPersistenceChange = cptpl
            let t = s.applying(.register(c, .init(currentKey: crkey, newKey: nrkey)), by: a)
            s = t.state
            return t.status
        }
        #expect(reg(0, nrkey: 0) == .invalidField)               // a key-0 registrant never exists
        #expect(reg(0, nrkey: 0x10) == .success)
        #expect(s.generation == 1)
        #expect(reg(0, nrkey: 0x10) == .success)                 // same key again: success
        #expect(reg(0, nrkey: 0x11) == .reservationConflict)     // another key
        #expect(reg(2, crkey: 0x99, nrkey: 0x20) == .reservationConflict)
        #expect(reg(2, crkey: 0x10, nrkey: 0x20) == .success)
        #expect(s.registrant(a)?.key == 0x20)
        #expect(reg(2, iekey: true, crkey: 0x99, nrkey: 0x30) == .success)
        #expect(s.registrant(a)?.key == 0x30)
        #expect(reg(3, nrkey: 1) == .invalidField)               // RREGA 3 reserved
        #expect(reg(0, cptpl: 1, nrkey: 0x30) == .invalidField)  // CPTPL 01b reserved
        #expect(reg(0, cptpl: 3, nrkey: 0x30) == .success)
        #expect(s.persistThroughPowerLoss)
        #expect(reg(0, cptpl: 2, nrkey: 0x30) == .success)
        #expect(!s.persistThroughPowerLoss)
        #expect(reg(1, crkey: 0x31, nrkey: 0) == .reservationConflict)
        #expect(reg(1, crkey: 0x30, nrkey: 0) == .success)
        #expect(!s.isRegistrant(a))
        #expect(reg(1, iekey: true, nrkey: 0) == .reservationConflict)  // not registered
        #expect(reg(2, iekey: true, nrkey: 5) == .reservationConflict)  // replace needs a registration
        #expect(s.generation == 7)  // every successful Register, and only those
    }

    @Test("replace with NRKEY 0 unregisters, and a holder's reservation goes with it")
    func replaceWithZeroUnregisters() {
        let s = Self.scenario(type: 3)
        let t = s.applying(.register(ReservationRegisterCommand(action: .replace), .init(currentKey: 0xA, newKey: 0)), by: Self.host("A"))
        #expect(t.status == .success)
        #expect(Self.describe(t.state) == "regs=BC type=- holder=-")
        // Type 3: the remaining registrants are told the reservation was released.
        #expect(Set(t.notices.map(\.hostID)) == [Self.host("B"), Self.host("C")])
        #expect(t.notices.allSatisfy { $0.type == .reservationReleased })
        #expect(!t.fences)
    }

    @Test func unregisterUnderAllRegistrantsKeepsTheReservationUntilTheLast() {
        var s = Self.scenario(type: 6)
        for (h, after) in [("A", "regs=BC type=6 holder=*"), ("B", "regs=C type=6 holder=*"), ("C", "regs= type=- holder=-")] {
            let c = Character(h)
            let t = s.applying(.register(ReservationRegisterCommand(action: .unregister), .init(currentKey: Self.keys[c] ?? 0, newKey: 0)), by: Self.host(c))
            #expect(t.status == .success)
            s = t.state
            #expect(Self.describe(s) == after)
        }
    }

    // MARK: Acquire

    @Test func acquireRules() {
        let s = Self.scenario(type: nil)
        #expect(Self.acquire(s, "A", 2, key: 0x99).status == .reservationConflict)  // CRKEY mismatch
        var unregistered = ReservationState()
        unregistered = Self.register(unregistered, "B")
        #expect(Self.acquire(unregistered, "A", 2).status == .reservationConflict)  // not a registrant
        #expect(Self.acquire(s, "A", 0).status == .invalidField)
        #expect(Self.acquire(s, "A", 7).status == .invalidField)
        var iekey = ReservationAcquireCommand(action: .acquire, type: .exclusiveAccess, ignoreExistingKey: true)
        #expect(s.applying(.acquire(iekey, .init(currentKey: 0xA)), by: Self.host("A")).status == .invalidField)
        iekey.ignoreExistingKey = false
        iekey.rawAction = 3
        #expect(s.applying(.acquire(iekey, .init(currentKey: 0xA)), by: Self.host("A")).status == .invalidField)
        let held = Self.acquire(s, "A", 2)
        #expect(held.status == .success)
        #expect(held.state.generation == s.generation)  // Acquire does not change GEN
        #expect(Self.acquire(held.state, "A", 2).status == .success)                 // holder, same type
        #expect(Self.acquire(held.state, "A", 1).status == .reservationConflict)     // holder, other type
        #expect(Self.acquire(held.state, "B", 2).status == .reservationConflict)     // someone else holds it
        let all = Self.acquire(s, "A", 5).state
        #expect(Self.acquire(all, "B", 5).status == .success)                        // every registrant holds 5/6
        #expect(Self.acquire(all, "B", 6).status == .reservationConflict)
    }

    // MARK: Release and Clear

    @Test func releaseRules() {
        let held = Self.scenario(type: 3)
        #expect(Self.release(held, "A", 3, key: 0x99).status == .reservationConflict)
        let nonHolder = Self.release(held, "B", 3)
        #expect(nonHolder.status == .success)
        #expect(!nonHolder.changed)                                                     // not the holder: no-op
        #expect(Self.release(held, "A", 4).status == .invalidField)                    // RTYPE ≠ held type
        var iekey = ReservationReleaseCommand(action: .release, type: .writeExclusiveRegistrantsOnly, ignoreExistingKey: true)
        #expect(held.applying(.release(iekey, .init(currentKey: 0xA)), by: Self.host("A")).status == .invalidField)
        iekey.ignoreExistingKey = false
        iekey.rawAction = 2
        #expect(held.applying(.release(iekey, .init(currentKey: 0xA)), by: Self.host("A")).status == .invalidField)
        let released = Self.release(held, "A", 3)
        #expect(released.status == .success)
        #expect(Self.describe(released.state) == "regs=ABC type=- holder=-")
        #expect(released.state.generation == held.generation)
        #expect(Set(released.notices.map(\.hostID)) == [Self.host("B"), Self.host("C")])
        // Types 1 and 2: no "released" notice (the others had no access to gain).
        #expect(Self.release(Self.scenario(type: 2), "A", 2).notices.isEmpty)
        #expect(Self.release(Self.scenario(type: nil), "A", 0).status == .success)   // nothing held
        // Unregistered host: Conflict.
        #expect(Self.release(ReservationState(), "A", 1).status == .reservationConflict)
    }

    @Test func clearRemovesEverythingAndFences() {
        let held = Self.scenario(type: 2)
        let t = Self.release(held, "B", 0, clear: true)
        #expect(t.status == .success)
        #expect(Self.describe(t.state) == "regs= type=- holder=-")
        #expect(t.state.generation == held.generation + 1)
        #expect(Set(t.preempted) == [Self.host("A"), Self.host("C")])
        #expect(t.notices.allSatisfy { $0.type == .reservationPreempted })
        #expect(t.fences)
        #expect(Self.release(held, "B", 0, clear: true, key: 0x1).status == .reservationConflict)
    }

    @Test func generationWraps() throws {
        let s = try #require(ReservationState(registrants: [], reservation: nil, generation: .max, persistThroughPowerLoss: false))
        #expect(Self.register(s, "A").generation == 0)
    }

    @Test func restoredStatesAreChecked() {
        let a = Self.host("A"), b = Self.host("B")
        #expect(ReservationState(registrants: [.init(hostID: a, key: 1), .init(hostID: a, key: 2)], reservation: nil,
                                 generation: 0, persistThroughPowerLoss: true) == nil)
        #expect(ReservationState(registrants: [.init(hostID: a, key: 0)], reservation: nil, generation: 0, persistThroughPowerLoss: true) == nil)
        #expect(ReservationState(registrants: [.init(hostID: a, key: 1)], reservation: .init(type: .exclusiveAccess, holder: b),
                                 generation: 0, persistThroughPowerLoss: true) == nil)
        #expect(ReservationState(registrants: [], reservation: .init(type: .exclusiveAccessAllRegistrants, holder: nil),
                                 generation: 0, persistThroughPowerLoss: true) == nil)
        #expect(ReservationState(registrants: [.init(hostID: a, key: 1)], reservation: .init(type: .exclusiveAccess, holder: a),
                                 generation: 9, persistThroughPowerLoss: true) != nil)
    }

    @Test func reportMarksHolders() {
        let s = Self.scenario(type: 2)
        let status = s.status
        #expect(status.type == .exclusiveAccess)
        #expect(status.registrantCount == 3)
        #expect(status.registrants.map(\.holdsReservation) == [true, false, false])
        #expect(status.registrants.allSatisfy { $0.controllerID == 0xFFFF })
        #expect(Self.scenario(type: 5).status.registrants.allSatisfy { $0.holdsReservation })
    }
}
