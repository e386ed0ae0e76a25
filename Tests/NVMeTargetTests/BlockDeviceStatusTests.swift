import NVMe
@testable import NVMeTarget
import Storage
import Testing

@Suite("Block device errors → NVMe status")
struct BlockDeviceStatusTests {
    @Test("each BlockDeviceError maps to its NVMe status; no space is Capacity Exceeded (0/81h, DNR)")
    func mapping() {
        #expect(NVMeStatus(blockDeviceError: BlockDeviceError.noSpace) == .capacityExceeded)
        #expect(NVMeStatus.capacityExceeded.codeType == 0 && NVMeStatus.capacityExceeded.code == 0x81)
        #expect(NVMeStatus.capacityExceeded.doNotRetry)
        #expect(NVMeStatus.capacityExceeded.name == "Capacity Exceeded")
        #expect(NVMeStatus(blockDeviceError: BlockDeviceError.outOfRange) == .lbaOutOfRange)
        #expect(NVMeStatus(blockDeviceError: BlockDeviceError.misaligned) == .dataSGLLengthInvalid)
        #expect(NVMeStatus(blockDeviceError: BlockDeviceError.ioError(errno: 5)) == .internalError)
        #expect(NVMeStatus(blockDeviceError: BlockDeviceError.closed) == .namespaceNotReady)
    }
}
