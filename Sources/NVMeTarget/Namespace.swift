import NVMe
import Storage

/// A namespace as the target serves it: an ID, a block device and the identity every path reports
/// (NVMe base spec 2.0 §3.2.1).
public final class Namespace: Sendable {
    public let id: UInt32
    public let device: any BlockDevice
    public let identity: NamespaceIdentity
    /// Cached from the device: they never change while the namespace is served.
    public let blockSize: Int
    public let blockCount: UInt64
    /// log2(blockSize): 9 or 12.
    public let blockSizeShift: UInt8
    /// The ANA group the namespace is in (Identify Namespace ANAGRPID; fixed while served).
    public let anaGroupID: UInt32
    /// The reservation gate every command touching the data passes (NamespaceReservations.swift).
    public let reservations: NamespaceReservations

    init(id: UInt32, device: any BlockDevice, identity: NamespaceIdentity, anaGroupID: UInt32 = 1,
         reservationState: ReservationStateLocation = .automatic) {
        precondition(id != 0 && id < 0xFFFF_FFFE, "namespace ID \(id) is reserved")
        precondition(device.blockSize.nonzeroBitCount == 1 && device.blockSize >= 512, "block size must be a power of two ≥ 512")
        self.id = id
        self.device = device
        self.identity = identity
        self.blockSize = device.blockSize
        self.blockCount = device.blockCount
        self.blockSizeShift = UInt8(device.blockSize.trailingZeroBitCount)
        self.anaGroupID = anaGroupID
        self.reservations = NamespaceReservations(
            namespaceID: id, stateFile: reservationState.resolved(device: device))
    }

    /// Whether blocks [lba, lba+count) lie inside the namespace (overflow-safe).
    func contains(lba: UInt64, count: UInt64) -> Bool {
        let (end, overflow) = lba.addingReportingOverflow(count)
        return !overflow && end <= blockCount
    }
}

extension NVMeStatus {
    /// The status the target answers for a failure of a namespace's block device (a
    /// ``Storage/BlockDeviceError``, an ``NVMeStatusError``…), for access paths that reach the
    /// device in-process, such as a nexus's local child (NVM command set spec 1.0 §3.3).
    public init(deviceError error: any Error) {
        self.init(blockDeviceError: error)
    }
}
