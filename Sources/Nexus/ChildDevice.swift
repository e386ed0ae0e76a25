import NIOCore
import NVMe

/// One child of a nexus as the nexus drives it: a replica reached over NVMe/TCP (``RemoteChild``)
/// or served by this io-engine and reached directly through its namespace's reservation gate
/// (``LocalChild``). Both speak in blocks of the replica's namespace 1 and report failures as
/// ``ChildIOError`` so the nexus can tell "another nexus owns the volume" (fence) from "this
/// replica is broken" (fault the child).
///
/// Every method may be called concurrently from any task; ``close()`` fails later calls with
/// ``ChildIOError/closed``.
public protocol ChildDevice: AnyObject, Sendable {
    /// The child's URI, `nvmf://HOST:PORT/SUBNQN` (the same for a local child).
    var uri: String { get }
    /// Logical block size of the child's namespace (512 or 4096).
    var blockSize: Int { get }
    /// Number of logical blocks of the child's namespace.
    var blockCount: UInt64 { get }

    func read(lba: UInt64, blocks: UInt32) async throws(ChildIOError) -> ByteBuffer
    func write(lba: UInt64, data: ByteBuffer, fua: Bool) async throws(ChildIOError)
    func writeZeroes(lba: UInt64, blocks: UInt32, deallocate: Bool) async throws(ChildIOError)
    func deallocate(lba: UInt64, blocks: UInt32) async throws(ChildIOError)
    func flush() async throws(ChildIOError)

    /// Registers `key` for this nexus's host identity, replacing any key it held (Reservation
    /// Register, action Replace with IEKEY — NVMe base spec 2.0 §7.3.3).
    func register(key: UInt64) async throws(ChildIOError)
    /// Reservation Acquire of `type` with `key`: plain acquire when `preempting` is nil, else
    /// Preempt-and-Abort of the registrant holding key `preempting` (§7.3.1).
    func acquire(key: UInt64, type: ReservationType, preempting: UInt64?) async throws(ChildIOError)
    /// Reservation Release of `type` held with `key` (§7.3.2).
    func release(key: UInt64, type: ReservationType) async throws(ChildIOError)
    /// Reservation Report (§7.3.4, extended data structure).
    func reservationReport() async throws(ChildIOError) -> ReservationStatus

    /// The block ranges that hold data, ascending and disjoint, or nil when the child cannot
    /// tell (a rebuild then copies everything). Used to skip unwritten ranges in a full rebuild.
    func allocatedRanges() async throws(ChildIOError) -> [Range<UInt64>]?

    /// Reservation notices for this nexus's registration (for example "registration preempted"):
    /// lets a fenced nexus shut down before its next I/O. Finishes when the child closes.
    var notices: AsyncStream<ChildNotice> { get }

    /// Ends the connection (remote) or drops the namespace handle (local). Idempotent.
    func close() async

    /// ``write(lba:data:fua:)`` for the nexus's I/O path, without a task: `completion` runs
    /// exactly once, on any thread (nil: written). `eventLoop` is the caller's loop — a device
    /// that runs work on a loop of its own choosing (a local replica) runs it there, so a write
    /// that needs no network hops no thread.
    func submitWrite(lba: UInt64, data: ByteBuffer, fua: Bool, on eventLoop: any EventLoop,
                     completion: @escaping @Sendable (ChildIOError?) -> Void)
    /// ``read(lba:blocks:)`` in the same callback form.
    func submitRead(lba: UInt64, blocks: UInt32, on eventLoop: any EventLoop,
                    completion: @escaping @Sendable (Result<ByteBuffer, ChildIOError>) -> Void)
}

extension ChildDevice {
    /// Default: the async write in a task.
    public func submitWrite(lba: UInt64, data: ByteBuffer, fua: Bool, on eventLoop: any EventLoop,
                            completion: @escaping @Sendable (ChildIOError?) -> Void) {
        writeInTask(lba: lba, data: data, fua: fua, completion: completion)
    }

    /// Default: the async read in a task.
    public func submitRead(lba: UInt64, blocks: UInt32, on eventLoop: any EventLoop,
                           completion: @escaping @Sendable (Result<ByteBuffer, ChildIOError>) -> Void) {
        readInTask(lba: lba, blocks: blocks, completion: completion)
    }

    /// Runs the async ``write(lba:data:fua:)`` in a task and reports through `completion`.
    func writeInTask(lba: UInt64, data: ByteBuffer, fua: Bool, completion: @escaping @Sendable (ChildIOError?) -> Void) {
        Task {
            do throws(ChildIOError) {
                try await write(lba: lba, data: data, fua: fua)
                completion(nil)
            } catch {
                completion(error)
            }
        }
    }

    /// Runs the async ``read(lba:blocks:)`` in a task and reports through `completion`.
    func readInTask(lba: UInt64, blocks: UInt32, completion: @escaping @Sendable (Result<ByteBuffer, ChildIOError>) -> Void) {
        Task {
            do throws(ChildIOError) {
                completion(.success(try await read(lba: lba, blocks: blocks)))
            } catch {
                completion(.failure(error))
            }
        }
    }
}

/// A reservation event a child reports without being asked (NVMe base spec 2.0 §5.16.1.21).
public enum ChildNotice: Hashable, Sendable {
    /// This nexus's registration was preempted: another nexus owns the volume.
    case registrationPreempted
    /// Released or preempted reservation that was not ours — informational.
    case reservationReleased
    /// The connection to the child was lost (remote only).
    case connectionLost(String)
}

/// Why a child command failed, as the nexus must act on it.
public enum ChildIOError: Error, Hashable, Sendable, CustomStringConvertible {
    /// NVMe Reservation Conflict (SCT 0h, SC 83h): another nexus holds the reservation.
    /// The nexus shuts itself down and never retires the replica for this.
    case reservationConflict
    /// The command reached the replica and failed with this status (media error, capacity
    /// exceeded, namespace not ready …): the child is faulted.
    case status(NVMeStatus)
    /// The replica could not be reached: connection lost, command or keep-alive timeout,
    /// connect refused. The child is faulted.
    case unreachable(String)
    /// A request the nexus should never send (out of range, misaligned): a bug, not a fault
    /// of the replica.
    case invalidRequest(String)
    /// The child was closed.
    case closed

    public var description: String {
        switch self {
        case .reservationConflict: "reservation conflict"
        case .status(let status): "NVMe status \(status)"
        case .unreachable(let reason): "unreachable: \(reason)"
        case .invalidRequest(let reason): "invalid request: \(reason)"
        case .closed: "child closed"
        }
    }
}
