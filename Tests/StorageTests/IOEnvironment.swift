import NIOCore
import NIOPosix

/// Event loops, a thread pool and a temporary directory for one test, all shut down and
/// deleted when the test body returns or throws.
struct IOEnvironment: Sendable {
    let group: MultiThreadedEventLoopGroup
    let threadPool: NIOThreadPool
    let directory: TemporaryDirectory

    /// The first event loop.
    var loop: any EventLoop { group.any() }

    /// Every event loop of the group, in order.
    var loops: [any EventLoop] { Array(group.makeIterator()) }

    static func with<T>(loops: Int = 1, _ body: (IOEnvironment) async throws -> T) async throws -> T {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: loops)
        let threadPool = NIOThreadPool(numberOfThreads: 2)
        threadPool.start()
        let directory: TemporaryDirectory
        do {
            directory = try TemporaryDirectory()
        } catch {
            try await threadPool.shutdownGracefully()
            try await group.shutdownGracefully()
            throw error
        }
        let environment = IOEnvironment(group: group, threadPool: threadPool, directory: directory)
        let result: Result<T, any Error>
        do {
            result = .success(try await body(environment))
        } catch {
            result = .failure(error)
        }
        try await threadPool.shutdownGracefully()
        try await group.shutdownGracefully()
        directory.remove()
        return try result.get()
    }
}
