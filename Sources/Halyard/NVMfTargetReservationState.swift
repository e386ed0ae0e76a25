import Foundation
import NVMeTarget

extension NVMfTargetCommand {
    /// Where a namespace's reservation state lives: `--state-dir DIR` moves a file namespace's
    /// state into DIR (`<nqn>-ns<nsid>.reservations.json`); without it the state sits beside the
    /// backing file. A memory namespace keeps its state in memory either way.
    func reservationState(nqn: String, namespaceID: UInt32, fileBacked: Bool) throws -> ReservationStateLocation {
        guard let stateDir, fileBacked else { return .automatic }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: stateDir, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw ConfigError("--state-dir \(stateDir) is not a directory")
        }
        return .file(inDirectory: stateDir, subsystemNQN: nqn, namespaceID: namespaceID)
    }
}
