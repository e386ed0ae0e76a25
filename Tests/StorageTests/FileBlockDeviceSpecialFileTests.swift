import Foundation
import NIOCore
import NIOPosix
import Storage
import Testing

@Suite("FileBlockDevice on special files")
struct FileBlockDeviceSpecialFileTests {
    @Test("a character device is refused: only regular files and block devices back a device")
    func characterDevice() async throws {
        try await IOEnvironment.with { environment in
            #expect(throws: FileBlockDeviceError.notRegularFile(path: "/dev/null")) {
                try FileBlockDevice.open(path: "/dev/null", size: nil, blockSize: 512, threadPool: environment.threadPool)
            }
            #expect(FileBlockDeviceError.notRegularFile(path: "/dev/null").description
                == "backing path '/dev/null' is neither a regular file nor a block device")
        }
    }

    @Test("ENOSPC has its own error, .noSpace (NVMe Capacity Exceeded)")
    func noSpace() {
        #expect(BlockDeviceError.noSpace.description == "no space left on the backing store")
        #expect(BlockDeviceError.noSpace != .ioError(errno: ENOSPC))
    }
}
