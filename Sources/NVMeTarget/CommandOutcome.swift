import NIOCore
import NVMe

/// What executing one command produced: the completion's status and result dwords, and the data to
/// return to the host for a controller-to-host command.
struct CommandOutcome {
    var status: NVMeStatus
    var dw0: UInt32 = 0
    var dw1: UInt32 = 0
    /// Data for the host, sent in C2HData PDUs before the completion.
    var data: ByteBuffer?
    /// The connection closes after this completion has been sent (Fabrics Disconnect).
    var closeAfterCompletion = false

    static func success(dw0: UInt32 = 0, data: ByteBuffer? = nil) -> CommandOutcome {
        CommandOutcome(status: .success, dw0: dw0, data: data)
    }

    static func failure(_ status: NVMeStatus, dw0: UInt32 = 0) -> CommandOutcome {
        CommandOutcome(status: status, dw0: dw0)
    }
}

/// An error that carries the exact NVMe status the host must see: a block device that is itself
/// a target of other devices (the nexus) answers, say, Asymmetric Access Inaccessible (3/02) while
/// it holds the host during a shutdown, so the Linux host requeues instead of failing the I/O.
public protocol NVMeStatusError: Error {
    var nvmeStatus: NVMeStatus { get }
}

/// Maps a block-device failure to the NVMe status the host sees.
extension NVMeStatus {
    init(blockDeviceError error: any Error) {
        switch error {
        case let e as any NVMeStatusError:
            self = e.nvmeStatus
        case let e as Storage.BlockDeviceError:
            switch e {
            case .outOfRange: self = .lbaOutOfRange
            case .misaligned: self = .dataSGLLengthInvalid
            case .ioError, .injected: self = .internalError
            case .closed: self = .namespaceNotReady
            case .noSpace: self = .capacityExceeded
            }
        default: self = .internalError
        }
    }
}

import Storage
