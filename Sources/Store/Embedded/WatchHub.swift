/// The embedded store's live watchers: each one a key range, the next revision it is owed and
/// its stream's continuation. The store publishes each revision's events here once they are
/// durable, always in revision order, under its lock; a watcher gets only events at or after
/// its next revision, so replayed history and live events never overlap or reorder.
///
/// Buffering is unbounded (`AsyncThrowingStream`'s `.unbounded` policy): a consumer that stops
/// reading holds its backlog in memory until it reads, cancels or the store closes.
///
/// Lock discipline: `finish()` on a continuation runs its `onTermination`, which takes the
/// store's lock to unregister; so the hub only yields under the lock, and hands continuations
/// back (``remove(_:)``, ``removeAll()``) for the caller to finish after unlocking.
struct WatchHub {
    typealias Continuation = AsyncThrowingStream<[WatchEvent], any Error>.Continuation

    private struct Watcher {
        var range: KeyRange
        var nextRevision: Int64
        var continuation: Continuation
    }

    private var watchers: [Int: Watcher] = [:]
    private var nextID = 0

    /// The last revision whose events were published: a watch "from now" starts after it.
    private(set) var publishedRevision: Int64

    init(publishedRevision: Int64) { self.publishedRevision = publishedRevision }

    var count: Int { watchers.count }

    /// The ID the next ``add(_:nextRevision:continuation:)`` returns (so `onTermination` can be
    /// set before registering).
    var upcomingID: Int { nextID }

    /// Registers a watcher owed events from `nextRevision` on.
    mutating func add(_ range: KeyRange, nextRevision: Int64, continuation: Continuation) -> Int {
        let id = nextID
        nextID += 1
        watchers[id] = Watcher(range: range, nextRevision: nextRevision, continuation: continuation)
        return id
    }

    /// Unregisters a watcher; returns its continuation (finish it after unlocking, or just drop it).
    mutating func remove(_ id: Int) -> Continuation? { watchers.removeValue(forKey: id)?.continuation }

    /// Unregisters every watcher and returns their continuations to finish after unlocking.
    mutating func removeAll() -> [Continuation] {
        defer { watchers.removeAll() }
        return watchers.values.map(\.continuation)
    }

    /// Delivers the events of the revisions up to `revision` (in revision order) to every
    /// watcher whose range they touch and which is owed them.
    mutating func publish(_ events: [WatchEvent], through revision: Int64) {
        guard revision > publishedRevision else { return }
        publishedRevision = revision
        if events.isEmpty || watchers.isEmpty { return }
        for (id, watcher) in watchers {
            let mine = events.filter { $0.revision >= watcher.nextRevision && watcher.range.contains(Array($0.kv.key.utf8)) }
            if !mine.isEmpty { watcher.continuation.yield(mine) }
            if revision >= watcher.nextRevision { watchers[id]!.nextRevision = revision + 1 }
        }
    }
}
