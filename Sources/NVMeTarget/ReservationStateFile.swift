#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import NVMe
import Storage

/// Durable storage of one namespace's reservation state for Persist Through Power Loss
/// (NVMe base spec 2.0 §8.19.11): a JSON file (``ReservationStateFile``) or whatever an embedder
/// provides (the io-engine keeps a replica's state in its pool's metadata journal).
public protocol ReservationStatePersistence: Sendable {
    /// Names the storage in logs and errors (a path, a replica).
    var name: String { get }
    /// The saved state, nil when none was ever saved; throws when it cannot be read or is invalid.
    func load() throws(ReservationStateFile.Failure) -> ReservationState?
    /// Saves `state` durably before returning. Blocks: the target calls it off the event loop.
    func save(_ state: ReservationState) throws(ReservationStateFile.Failure)
}

/// Where a namespace keeps its reservation state for Persist Through Power Loss.
public enum ReservationStateLocation: Sendable {
    /// Beside a file-backed namespace's backing file (`<file>.reservations.json`); in memory for
    /// any other device. A memory namespace loses its data on restart, and its reservations with it.
    case automatic
    /// In memory only: PTPL is accepted and reported, but nothing survives a restart.
    case memory
    /// This JSON file.
    case file(String)
    /// Storage the embedder provides.
    case custom(any ReservationStatePersistence)

    /// The file for namespace `namespaceID` of `subsystemNQN` inside `directory` (`--state-dir`):
    /// `<directory>/<nqn>-ns<nsid>.reservations.json`, with `/` in the NQN replaced.
    public static func file(inDirectory directory: String, subsystemNQN: String, namespaceID: UInt32) -> ReservationStateLocation {
        let name = subsystemNQN.map { $0 == "/" ? "_" : $0 }
        return .file(directory + "/" + String(name) + "-ns\(namespaceID).reservations.json")
    }

    /// The persistence for a namespace on `device`, or nil for in-memory state.
    func resolved(device: any BlockDevice) -> (any ReservationStatePersistence)? {
        switch self {
        case .memory: return nil
        case .file(let path): return ReservationStateFile(path: path)
        case .custom(let persistence): return persistence
        case .automatic:
            var device: any BlockDevice = device
            while let wrapper = device as? FaultInjectingBlockDevice { device = wrapper.wrapped }
            return (device as? FileBlockDevice).map { ReservationStateFile(path: $0.path + ".reservations.json") }
        }
    }
}

/// The durable form of a ``ReservationState`` (research/nvme-tcp.md §7.5): JSON with a version,
/// written as temp file → fsync → rename → fsync of the directory, so a reader sees either the
/// old or the new state, whole. Keys and host IDs are hex strings (no precision questions).
///
/// ```json
/// {"version":1,"persistThroughPowerLoss":true,"generation":7,
///  "reservation":{"type":2,"holder":"<32 hex digits>"},
///  "registrants":[{"hostID":"<32 hex digits>","key":"00000000000000a1"}]}
/// ```
public struct ReservationStateFile: ReservationStatePersistence {
    public let path: String

    public init(path: String) { self.path = path }

    public var name: String { path }

    static let version = 1

    private struct Persisted: Codable {
        struct Registrant: Codable {
            var hostID: String
            var key: String
        }
        struct Reservation: Codable {
            var type: UInt8
            /// Absent for types 5 and 6.
            var holder: String?
        }
        var version: Int
        var persistThroughPowerLoss: Bool
        var generation: UInt32
        var reservation: Reservation?
        var registrants: [Registrant]
    }

    /// Why a state file cannot be used.
    public struct Failure: Error, CustomStringConvertible {
        public var path: String
        public var reason: String
        public var description: String { "reservation state file \(path): \(reason)" }

        /// A failure of the storage named `path` (an embedder's persistence reports its own).
        public init(path: String, reason: String) {
            self.path = path
            self.reason = reason
        }
    }

    /// Reads the file: nil when there is none; throws when it is unreadable, truncated, of another
    /// version or describes an impossible state.
    public func load() throws(Failure) -> ReservationState? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 {
            let code = errno
            if code == ENOENT { return nil }
            throw Failure(path: path, reason: "cannot open: \(String(cString: strerror(code)))")
        }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw Failure(path: path, reason: "cannot read: \(String(cString: strerror(errno)))")
            }
            if n == 0 { break }
            bytes += chunk[0..<n]
            guard bytes.count <= 16 << 20 else { throw Failure(path: path, reason: "larger than 16 MiB") }
        }
        return try Self.decode(bytes, source: path)
    }

    /// Decodes the JSON form (what ``encode(_:)`` wrote); `source` names it in the error.
    public static func decode(_ bytes: [UInt8], source path: String) throws(Failure) -> ReservationState {
        let persisted: Persisted
        do {
            persisted = try JSONDecoder().decode(Persisted.self, from: Data(bytes))
        } catch {
            throw Failure(path: path, reason: "not a valid state file (\(bytes.count) bytes; truncated or corrupt): \(error)")
        }
        guard persisted.version == Self.version else {
            throw Failure(path: path, reason: "unsupported version \(persisted.version) (this build reads \(Self.version))")
        }
        var registrants: [ReservationState.Registrant] = []
        for r in persisted.registrants {
            guard let host = HostIdentifier(hex: r.hostID), let key = UInt64(r.key, radix: 16) else {
                throw Failure(path: path, reason: "bad registrant \(r.hostID)/\(r.key)")
            }
            registrants.append(.init(hostID: host, key: key))
        }
        var reservation: ReservationState.Reservation?
        if let r = persisted.reservation {
            guard let type = ReservationType(rawValue: r.type) else { throw Failure(path: path, reason: "bad reservation type \(r.type)") }
            let holder = r.holder.flatMap(HostIdentifier.init(hex:))
            guard type.allRegistrantsAreHolders || holder != nil else { throw Failure(path: path, reason: "type \(r.type) reservation without a holder") }
            reservation = .init(type: type, holder: holder)
        }
        guard let state = ReservationState(registrants: registrants, reservation: reservation, generation: persisted.generation,
                                           persistThroughPowerLoss: persisted.persistThroughPowerLoss) else {
            throw Failure(path: path, reason: "inconsistent state (duplicate host, key 0, or a holder that is not registered)")
        }
        return state
    }

    /// The JSON form of `state` (sorted keys).
    public static func encode(_ state: ReservationState) -> [UInt8] {
        let persisted = Persisted(
            version: Self.version, persistThroughPowerLoss: state.persistThroughPowerLoss, generation: state.generation,
            reservation: state.reservation.map { .init(type: $0.type.rawValue, holder: $0.holder?.description) },
            registrants: state.registrants.map { .init(hostID: $0.hostID.description, key: Self.hex($0.key)) })
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        // Encoding plain strings, integers and arrays cannot fail.
        return (try? encoder.encode(persisted)).map { [UInt8]($0) } ?? []
    }

    /// Writes `state` durably: `<path>.tmp`, fsync, rename over `path`, fsync of the directory.
    /// Blocks: call it off the event loop.
    public func save(_ state: ReservationState) throws(Failure) {
        let data = Self.encode(state)
        let temporary = path + ".tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw failure("cannot create \(temporary)") }
        var ok = false
        defer { if !ok { unlink(temporary) } }
        do {
            defer { close(fd) }
            let written = data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) -> Bool in
                guard let base = raw.baseAddress else { return true }
                var offset = 0
                while offset < raw.count {
                    let n = write(fd, base + offset, raw.count - offset)
                    if n < 0 {
                        if errno == EINTR { continue }
                        return false
                    }
                    offset += n
                }
                return true
            }
            guard written else { throw failure("cannot write \(temporary)") }
            guard fsync(fd) == 0 else { throw failure("cannot fsync \(temporary)") }
        }
        guard rename(temporary, path) == 0 else { throw failure("cannot rename \(temporary) to \(path)") }
        ok = true
        let directory = Self.directory(of: path)
        let dfd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard dfd >= 0 else { throw failure("cannot open directory \(directory)") }
        defer { close(dfd) }
        guard fsync(dfd) == 0 else { throw failure("cannot fsync directory \(directory)") }
    }

    private func failure(_ what: String) -> Failure {
        Failure(path: path, reason: "\(what): \(String(cString: strerror(errno)))")
    }

    static func directory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    static func hex(_ key: UInt64) -> String {
        let digits = String(key, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }
}
