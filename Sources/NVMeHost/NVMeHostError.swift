import NVMe

/// Why a host-side operation failed.
public enum NVMeHostError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The TCP connection of the queue closed (or could not be made).
    case transportClosed(String)
    /// The target violated the NVMe/TCP protocol (bad PDU, wrong digest, unexpected data).
    case protocolError(String)
    /// The target sent a C2HTermReq.
    case terminatedByTarget(status: UInt16, information: UInt32)
    /// The command did not complete within its timeout.
    case timeout(commandID: UInt16)
    /// The command completed with an error status.
    case status(NVMeStatus, commandID: UInt16)
    /// The connection was refused during setup (ICResp, Connect, enabling the controller).
    case connectFailed(String)
    /// Too many commands in flight on the queue.
    case queueFull
    /// The request is not valid (argument out of range, transfer too large).
    case invalidArgument(String)

    public var description: String {
        switch self {
        case .transportClosed(let why): "transport closed: \(why)"
        case .protocolError(let why): "protocol error: \(why)"
        case .terminatedByTarget(let s, let i): "target terminated the connection (FES \(s), FEI \(i))"
        case .timeout(let cid): "command \(cid) timed out"
        case .status(let s, let cid): "command \(cid) failed: \(s)"
        case .connectFailed(let why): "connect failed: \(why)"
        case .queueFull: "queue full"
        case .invalidArgument(let why): "invalid argument: \(why)"
        }
    }

    /// Whether another path may succeed where this one failed (transport loss, path status).
    public var isPathError: Bool {
        switch self {
        case .transportClosed, .protocolError, .terminatedByTarget, .timeout: true
        case .status(let s, _): s.isPathError
        default: false
        }
    }
}

/// A completed command: its completion entry and, for controller-to-host commands, its data.
public struct CommandCompletion: Sendable {
    public var entry: CompletionQueueEntry
    public var data: ByteBuffer

    public init(entry: CompletionQueueEntry, data: ByteBuffer) {
        self.entry = entry
        self.data = data
    }
}

import NIOCore
