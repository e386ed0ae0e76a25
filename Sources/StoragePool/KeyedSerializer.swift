#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Synchronization

/// Runs async operations one at a time per key (a replica UUID), first come first served, so
/// a create that is still zeroing its extents and a retry of it (or a destroy) never
/// interleave. Operations on different keys run concurrently (and share journal commits).
final class KeyedSerializer: Sendable {
    private let queues = Mutex<[UUID: [CheckedContinuation<Void, Never>]]>([:])

    func run<T: Sendable>(_ key: UUID, _ body: () async throws(PoolError) -> T) async throws(PoolError) -> T {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let granted = queues.withLock { q -> Bool in
                if q[key] == nil {
                    q[key] = []
                    return true
                }
                q[key]!.append(continuation)
                return false
            }
            if granted { continuation.resume() }
        }
        defer {
            let next = queues.withLock { q -> CheckedContinuation<Void, Never>? in
                guard var waiting = q[key], !waiting.isEmpty else {
                    q[key] = nil
                    return nil
                }
                let next = waiting.removeFirst()
                q[key] = waiting
                return next
            }
            next?.resume()
        }
        return try await body()
    }
}
