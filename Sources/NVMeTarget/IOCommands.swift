import NIOCore
import NVMe
import Storage

/// Executes NVM command set I/O commands against a namespace's block device (NVM command set spec
/// 1.0 §3): Read, Write, Flush, Write Zeroes and Dataset Management (deallocate); reservation
/// commands go to ReservationCommands. Checks come in the order the Linux target uses: namespace,
/// (ANA, in QueueConnection), reservation access, then range, then execution.
enum IOCommands {
    /// Expected host→controller or controller→host data length for an I/O command, used to
    /// validate the SGL before any data moves. nil when the command is unknown here.
    static func expectedDataLength(_ sqe: SubmissionQueueEntry, namespace: Namespace?) -> Int? {
        guard let opcode = IOOpcode(rawValue: sqe.opcode) else { return nil }
        switch opcode {
        case .read, .write:
            guard let ns = namespace else { return nil }
            return (Int(sqe.cdw12 & 0xFFFF) + 1) << Int(ns.blockSizeShift)
        case .datasetManagement:
            return (Int(sqe.cdw10 & 0xFF) + 1) * 16
        case .flush, .writeZeroes:
            return 0
        default:
            return nil
        }
    }

    /// Executes `sqe` and calls `completion` on `eventLoop` (inline when the backend finishes
    /// inline). Reads and writes use the block device's callback form: no future per I/O.
    /// Must be called on `eventLoop`.
    /// `host` is the submitting controller's host ID: every command that touches the namespace is
    /// admitted by its reservation gate first (IOCommands+Reservations.swift) and released after
    /// its completion has been handed on.
    /// `namespace` is `subsystem.namespace(sqe.namespaceID)`, which the caller has already looked up.
    static func execute(_ sqe: SubmissionQueueEntry, data: ByteBuffer, subsystem: Subsystem, namespace: Namespace?,
                        host: HostIdentifier, on eventLoop: any EventLoop, completion: @escaping (CommandOutcome) -> Void) {
        assert(namespace === subsystem.namespace(sqe.namespaceID))
        switch IOOpcode(rawValue: sqe.opcode) {
        case .read:
            guard let ns = namespace else { return completion(.failure(.invalidNamespace)) }
            guard let token = admit(ns, host: host, isWrite: false, completion) else { return }
            let slba = UInt64(sqe.cdw10) | UInt64(sqe.cdw11) << 32
            let blocks = (sqe.cdw12 & 0xFFFF) + 1
            guard ns.contains(lba: slba, count: UInt64(blocks)) else {
                completion(.failure(.lbaOutOfRange))
                return ns.reservations.release(token)
            }
            ns.device.read(lba: slba, blocks: blocks, on: eventLoop) { result in
                switch result {
                case .success(let data): completion(.success(data: data))
                case .failure(let error): completion(.failure(NVMeStatus(blockDeviceError: error)))
                }
                ns.reservations.release(token)
            }
        case .write:
            guard let ns = namespace else { return completion(.failure(.invalidNamespace)) }
            guard let token = admit(ns, host: host, isWrite: true, completion) else { return }
            let slba = UInt64(sqe.cdw10) | UInt64(sqe.cdw11) << 32
            let blocks = UInt64(sqe.cdw12 & 0xFFFF) + 1
            guard ns.contains(lba: slba, count: blocks) else {
                completion(.failure(.lbaOutOfRange))
                return ns.reservations.release(token)
            }
            ns.device.write(lba: slba, data: data, fua: sqe.cdw12 & (1 << 30) != 0, on: eventLoop) { result in
                switch result {
                case .success: completion(.success())
                case .failure(let error): completion(.failure(NVMeStatus(blockDeviceError: error)))
                }
                ns.reservations.release(token)
            }
        default:
            guard let completion = admitOther(sqe, data: data, subsystem: subsystem, host: host, on: eventLoop,
                                              completion: completion) else { return }
            execute(sqe, data: data, subsystem: subsystem, on: eventLoop).assumeIsolated().whenComplete { result in
                switch result {
                case .success(let outcome): completion(outcome)
                case .failure: completion(.failure(.internalError))
                }
            }
        }
    }

    static func execute(_ sqe: SubmissionQueueEntry, data: ByteBuffer, subsystem: Subsystem,
                        on eventLoop: any EventLoop) -> EventLoopFuture<CommandOutcome> {
        guard let opcode = IOOpcode(rawValue: sqe.opcode) else {
            return eventLoop.makeSucceededFuture(.failure(.invalidOpcode))
        }
        if opcode == .flush && sqe.namespaceID == 0xFFFF_FFFF {
            // Broadcast flush (Identify VWC b2:1 = 11b): every namespace.
            let flushes = subsystem.namespaceIDs.compactMap { subsystem.namespace($0) }.map { $0.device.flush(on: eventLoop) }
            return complete(EventLoopFuture.andAllSucceed(flushes, on: eventLoop))
        }
        guard let ns = subsystem.namespace(sqe.namespaceID) else {
            return eventLoop.makeSucceededFuture(.failure(.invalidNamespace))
        }
        let slba = UInt64(sqe.cdw10) | UInt64(sqe.cdw11) << 32
        let fua = sqe.cdw12 & (1 << 30) != 0
        switch opcode {
        case .read:
            let blocks = (sqe.cdw12 & 0xFFFF) + 1
            guard ns.contains(lba: slba, count: UInt64(blocks)) else { return eventLoop.makeSucceededFuture(.failure(.lbaOutOfRange)) }
            return ns.device.read(lba: slba, blocks: blocks, on: eventLoop)
                .map { CommandOutcome.success(data: $0) }
                .recover { CommandOutcome.failure(NVMeStatus(blockDeviceError: $0)) }
        case .write:
            let blocks = UInt64(sqe.cdw12 & 0xFFFF) + 1
            guard ns.contains(lba: slba, count: blocks) else { return eventLoop.makeSucceededFuture(.failure(.lbaOutOfRange)) }
            return complete(ns.device.write(lba: slba, data: data, fua: fua, on: eventLoop))
        case .flush:
            return complete(ns.device.flush(on: eventLoop))
        case .writeZeroes:
            let blocks = UInt64(sqe.cdw12 & 0xFFFF) + 1
            guard ns.contains(lba: slba, count: blocks) else { return eventLoop.makeSucceededFuture(.failure(.lbaOutOfRange)) }
            let deallocate = sqe.cdw12 & (1 << 25) != 0
            return complete(ns.device.writeZeroes(lba: slba, blocks: blocks, deallocate: deallocate, fua: fua, on: eventLoop))
        case .datasetManagement:
            let attributes = sqe.cdw11
            guard attributes & 0x4 != 0 else {
                // Integral read/write hints only: nothing to do.
                return eventLoop.makeSucceededFuture(.success())
            }
            var ranges = data
            var work: [(UInt64, UInt64)] = []
            while ranges.readableBytes >= 16 {
                _ = ranges.readInteger(endianness: .little, as: UInt32.self)  // context attributes
                let count = UInt64(ranges.readInteger(endianness: .little, as: UInt32.self)!)
                let lba = ranges.readInteger(endianness: .little, as: UInt64.self)!
                guard ns.contains(lba: lba, count: count) else {
                    return eventLoop.makeSucceededFuture(.failure(.lbaOutOfRange))
                }
                if count > 0 { work.append((lba, count)) }
            }
            let futures = work.map { ns.device.deallocate(lba: $0.0, blocks: $0.1, on: eventLoop) }
            return complete(EventLoopFuture.andAllSucceed(futures, on: eventLoop))
        default:
            return eventLoop.makeSucceededFuture(.failure(.invalidOpcode))
        }
    }

    private static func complete(_ future: EventLoopFuture<Void>) -> EventLoopFuture<CommandOutcome> {
        future.map { CommandOutcome.success() }.recover { CommandOutcome.failure(NVMeStatus(blockDeviceError: $0)) }
    }
}
