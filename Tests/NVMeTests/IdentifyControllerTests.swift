import NIOCore
import NVMe
import Testing

@Suite struct IdentifyControllerTests {
    /// Every field set to a distinct non-zero value.
    static let populated = IdentifyController(
        vid: 0x1B36, ssvid: 0x1AF4,
        serialNumber: "HALYARD-SN-0001", modelNumber: "Halyard NVMe/TCP", firmwareRevision: "1.0",
        rab: 6, ieee: 0x0A0B0C, cmic: 0x0B, mdts: 5, cntlid: 0x1234,
        version: 0x0002_0000, rtd3r: 0x1111_2222, rtd3e: 0x3333_4444, oaes: 0x0000_0900, ctratt: 0x41,
        cntrltype: 1, fguid: Array(1...16),
        crdt1: 0x0101, crdt2: 0x0202, crdt3: 0x0303,
        oacs: 0x0606, acl: 3, aerl: 3, frmw: 3, lpa: 0x04, elpe: 0x3F, npss: 0x07, avscc: 0x01, apsta: 0x01,
        wctemp: 0x0157, cctemp: 0x0173,
        kas: 10, anatt: 10, anacap: 0x1F, anagrpmax: 0x0000_0080, nanagrpid: 0x0000_0040,
        sqes: 0x66, cqes: 0x44, maxcmd: 128, nn: 0x0000_0400,
        oncs: 0x002C, fuses: 0x0001, fna: 0x02, vwc: 0x01, awun: 0x0505, awupf: 0x0707,
        icsvscc: 0x01, nwpc: 0x03, acwu: 0x0909, ocfs: 0x0F0F, sgls: 0x0010_0001, mnan: 0x0000_0400,
        subnqn: "nqn.2026-01.io.halyard:subsystem1",
        ioccsz: 0x0000_0104, iorcsz: 0x0000_0001, icdoff: 0xABCD, fcatt: 0x01, msdbd: 1, ofcs: 0x0C0D)

    /// (offset, expected little-endian bytes) for every field of `populated`.
    static let expectedFields: [(Int, [UInt8])] = [
        (0, [0x36, 0x1B]), (2, [0xF4, 0x1A]),
        (4, Array("HALYARD-SN-0001".utf8) + [UInt8](repeating: 0x20, count: 5)),
        (24, Array("Halyard NVMe/TCP".utf8) + [UInt8](repeating: 0x20, count: 24)),
        (64, Array("1.0".utf8) + [UInt8](repeating: 0x20, count: 5)),
        (72, [6]), (73, [0x0C, 0x0B, 0x0A]), (76, [0x0B]), (77, [5]), (78, [0x34, 0x12]),
        (80, [0x00, 0x00, 0x02, 0x00]), (84, [0x22, 0x22, 0x11, 0x11]), (88, [0x44, 0x44, 0x33, 0x33]),
        (92, [0x00, 0x09, 0x00, 0x00]), (96, [0x41, 0, 0, 0]), (111, [1]), (112, Array(1...16)),
        (128, [1, 1]), (130, [2, 2]), (132, [3, 3]),
        (256, [6, 6]), (258, [3]), (259, [3]), (260, [3]), (261, [4]), (262, [0x3F]), (263, [7]), (264, [1]),
        (265, [1]), (266, [0x57, 0x01]), (268, [0x73, 0x01]),
        (320, [10, 0]), (342, [10]), (343, [0x1F]), (344, [0x80, 0, 0, 0]), (348, [0x40, 0, 0, 0]),
        (512, [0x66]), (513, [0x44]), (514, [128, 0]), (516, [0x00, 0x04, 0, 0]),
        (520, [0x2C, 0x00]), (522, [1, 0]), (524, [2]), (525, [1]), (526, [5, 5]), (528, [7, 7]),
        (530, [1]), (531, [3]), (532, [9, 9]), (534, [0x0F, 0x0F]), (536, [0x01, 0x00, 0x10, 0x00]),
        (540, [0x00, 0x04, 0, 0]),
        (768, Array("nqn.2026-01.io.halyard:subsystem1".utf8) + [UInt8](repeating: 0, count: 256 - 33)),
        (1792, [0x04, 0x01, 0, 0]), (1796, [1, 0, 0, 0]), (1800, [0xCD, 0xAB]), (1802, [1]), (1803, [1]),
        (1804, [0x0D, 0x0C]),
    ]

    @Test func encodesEveryFieldAtItsSpecOffsetAndZeroElsewhere() {
        var buffer = ByteBuffer()
        Self.populated.encode(into: &buffer)
        #expect(buffer.readableBytes == 4096)
        let bytes = buffer.getBytes(at: buffer.readerIndex, length: buffer.readableBytes)!
        var covered = [Bool](repeating: false, count: 4096)
        for (offset, expected) in Self.expectedFields {
            #expect(Array(bytes[offset..<offset + expected.count]) == expected, "field at \(offset)")
            for i in offset..<offset + expected.count { covered[i] = true }
        }
        for i in 0..<4096 where !covered[i] {
            #expect(bytes[i] == 0, "byte \(i) should be zero")
        }
    }

    @Test func cntlidSGLSSubnqnAndIOCCSZSpotChecks() {
        var buffer = ByteBuffer()
        IdentifyController(cntlid: 0x1234, sgls: 0x0010_0001, subnqn: "nqn.x", ioccsz: 4).encode(into: &buffer)
        #expect(buffer.getBytes(at: 78, length: 2) == [0x34, 0x12])
        #expect(buffer.getBytes(at: 536, length: 4) == [0x01, 0x00, 0x10, 0x00])
        #expect(buffer.getBytes(at: 768, length: 6) == Array("nqn.x".utf8) + [0])
        #expect(buffer.getBytes(at: 1792, length: 4) == [4, 0, 0, 0])
        // Defaults required by Fabrics.
        #expect(buffer.getBytes(at: 512, length: 2) == [0x66, 0x44])
    }

    @Test func roundTrips() throws {
        var buffer = ByteBuffer()
        Self.populated.encode(into: &buffer)
        buffer.writeBytes([0xEE])  // trailing byte must stay unread
        let decoded = try IdentifyController(decoding: &buffer)
        #expect(decoded == Self.populated)
        #expect(buffer.readableBytes == 1)

        var defaults = ByteBuffer()
        IdentifyController().encode(into: &defaults)
        #expect(try IdentifyController(decoding: &defaults) == IdentifyController())
    }

    @Test func truncatedInputThrows() {
        var buffer = ByteBuffer()
        Self.populated.encode(into: &buffer)
        var short = buffer.getSlice(at: 0, length: 4095)!
        #expect(throws: NVMeWireError.self) { try IdentifyController(decoding: &short) }
        do {
            _ = try IdentifyController(decoding: &short)
        } catch {
            #expect(error.kind == .truncated)
        }
        #expect(short.readableBytes == 4095)
    }
}
