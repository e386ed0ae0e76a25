import NIOCore
import NVMe

/// Reservation admission for I/O commands (research/nvme-tcp.md §5 check order: controller
/// enabled → NSID → ANA → reservation access → execute; §7.3 access matrix). Read and Write are
/// admitted inline in ``IOCommands/execute(_:data:subsystem:namespace:host:on:completion:)`` (no allocation);
/// the rest pass through ``admitOther(_:data:subsystem:host:on:completion:)``.
extension IOCommands {
    /// Admits a command on `namespace`; on denial completes it (Reservation Conflict with DNR, or
    /// Namespace Not Ready) and returns nil.
    @inline(__always)
    static func admit(_ namespace: Namespace, host: HostIdentifier, isWrite: Bool,
                      _ completion: (CommandOutcome) -> Void) -> NamespaceReservations.Token? {
        switch namespace.reservations.admit(host: host, isWrite: isWrite) {
        case .admitted(let token): return token
        case .denied(let status):
            completion(.failure(status))
            return nil
        }
    }

    /// Commands other than Read and Write: reservation commands run here (nil: handled); Flush,
    /// Write Zeroes and Dataset Management are admitted as write-type commands (a broadcast Flush
    /// on every namespace) and the returned completion releases them after completing; anything
    /// else (unknown opcode or namespace) passes unchanged, for the future path to answer.
    static func admitOther(_ sqe: SubmissionQueueEntry, data: ByteBuffer, subsystem: Subsystem, host: HostIdentifier,
                           on eventLoop: any EventLoop,
                           completion: @escaping (CommandOutcome) -> Void) -> ((CommandOutcome) -> Void)? {
        if ReservationCommands.isReservation(sqe.opcode) {
            guard let ns = subsystem.namespace(sqe.namespaceID) else {
                completion(.failure(.invalidNamespace))
                return nil
            }
            ReservationCommands.execute(sqe, data: data, namespace: ns, host: host, on: eventLoop)
                .assumeIsolated().whenComplete { result in
                    switch result {
                    case .success(let outcome): completion(outcome)
                    case .failure: completion(.failure(.internalError))
                    }
                }
            return nil
        }
        switch IOOpcode(rawValue: sqe.opcode) {
        case .flush, .writeZeroes, .datasetManagement: break
        default: return completion
        }
        let targets: [Namespace]
        if sqe.opcode == IOOpcode.flush.rawValue && sqe.namespaceID == 0xFFFF_FFFF {
            targets = subsystem.namespaceIDs.compactMap { subsystem.namespace($0) }
        } else if let ns = subsystem.namespace(sqe.namespaceID) {
            targets = [ns]
        } else {
            return completion
        }
        var tokens: [(Namespace, NamespaceReservations.Token)] = []
        for ns in targets {
            switch ns.reservations.admit(host: host, isWrite: true) {
            case .admitted(let token):
                tokens.append((ns, token))
            case .denied(let status):
                for (n, t) in tokens { n.reservations.release(t) }
                completion(.failure(status))
                return nil
            }
        }
        return { outcome in
            completion(outcome)
            for (ns, token) in tokens { ns.reservations.release(token) }
        }
    }
}
