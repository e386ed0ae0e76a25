import GRPCCore
import ServiceLifecycle

/// Runs a `GRPCServer` as a swift-service-lifecycle `Service`: serves until graceful shutdown
/// (SIGTERM through the ServiceGroup), then stops accepting RPCs and lets running ones finish.
public struct GRPCServerService<Transport: ServerTransport>: Service {
    public let server: GRPCServer<Transport>

    public init(server: GRPCServer<Transport>) {
        self.server = server
    }

    public func run() async throws {
        try await withGracefulShutdownHandler {
            try await server.serve()
        } onGracefulShutdown: {
            server.beginGracefulShutdown()
        }
    }
}
