import Logging
import Nexus
import NVMe
import NVMeTarget

/// The published side of a nexus as the nexus drives it (``NexusFrontend``): held sets ANA group 1
/// of the volume's subsystem Inaccessible on every listener of this engine — the Linux host then
/// queues I/O (and looks for another path) instead of failing it — and released sets it Optimized
/// again. Each change raises the ANA change event to the connected controllers that asked for it.
struct NexusANAFrontend: NexusFrontend {
    let target: NVMeTCPTarget
    let subsystemNQN: String
    /// The engine's listeners (bound addresses), read at each change.
    let listeners: @Sendable () -> [ListenerAddress]
    let logger: Logger

    func setHeld(_ held: Bool) async {
        let state: ANAState = held ? .inaccessible : .optimized
        for listener in listeners() {
            do {
                try await target.setANAState(subsystemNQN: subsystemNQN, listener: listener, group: 1, state: state)
            } catch {
                // Unpublished meanwhile: nothing to hold.
                logger.debug("ANA state not set", metadata: ["subnqn": "\(subsystemNQN)", "listener": "\(listener)", "error": "\(error)"])
            }
        }
    }
}
