import NIOCore
import NVMe
import Testing

@Suite struct ANALogPageTests {
    static let page = ANALogPage(changeCount: 0x0102_0304_0506_0708, groups: [
        .init(anaGroupID: 1, changeCount: 0x11, state: .optimized, namespaceIDs: [7, 2, 5]),
        .init(anaGroupID: 0x0000_0102, changeCount: 0x22, state: .inaccessible, namespaceIDs: [3]),
    ])

    @Test func encodesHeaderAndTwoGroupsWithSortedNSIDs() {
        var buffer = ByteBuffer()
        Self.page.encode(into: &buffer)
        #expect(buffer.readableBytes == 16 + (32 + 12) + (32 + 4))
        #expect(Self.page.encodedSize() == buffer.readableBytes)
        var expected: [UInt8] = [8, 7, 6, 5, 4, 3, 2, 1, 2, 0, 0, 0, 0, 0, 0, 0]
        // Group 1 at 16.
        expected += [1, 0, 0, 0, 3, 0, 0, 0, 0x11, 0, 0, 0, 0, 0, 0, 0, 0x01] + [UInt8](repeating: 0, count: 15)
        expected += [2, 0, 0, 0, 5, 0, 0, 0, 7, 0, 0, 0]
        // Group 0x102 at 60.
        expected += [2, 1, 0, 0, 1, 0, 0, 0, 0x22, 0, 0, 0, 0, 0, 0, 0, 0x03] + [UInt8](repeating: 0, count: 15)
        expected += [3, 0, 0, 0]
        #expect(buffer.getBytes(at: 0, length: buffer.readableBytes) == expected)
    }

    @Test func groupsOnlyFormHasNoNSIDs() throws {
        var buffer = ByteBuffer()
        Self.page.encode(into: &buffer, includeNamespaceIDs: false)
        #expect(buffer.readableBytes == 16 + 32 + 32)
        #expect(Self.page.encodedSize(includeNamespaceIDs: false) == 80)
        #expect(buffer.getInteger(at: 16 + 4, endianness: .little, as: UInt32.self) == 0)  // NNSIDS
        #expect(buffer.getInteger(at: 48, endianness: .little, as: UInt32.self) == 0x102)  // 2nd ANAGRPID
        #expect(buffer.getInteger(at: 48 + 16, as: UInt8.self) == 3)
        let decoded = try ANALogPage(decoding: &buffer)
        #expect(decoded.groups.map(\.namespaceIDs) == [[], []])
        #expect(decoded.groups.map(\.state) == [.optimized, .inaccessible])
    }

    @Test func roundTripsWithPaddingLeftUnread() throws {
        var buffer = Self.page.encodeRange(offset: 0, length: 4096)
        #expect(buffer.readableBytes == 4096)
        let decoded = try ANALogPage(decoding: &buffer)
        var sorted = Self.page
        sorted.groups[0].namespaceIDs = [2, 5, 7]
        #expect(decoded == sorted)
        #expect(decoded.changeCount == 0x0102_0304_0506_0708)
        #expect(buffer.readableBytes == 4096 - Self.page.encodedSize())
    }

    @Test func everyStateRoundTrips() throws {
        for state in ANAState.allCases {
            let page = ANALogPage(changeCount: 1, groups: [.init(anaGroupID: 9, state: state)])
            var buffer = ByteBuffer()
            page.encode(into: &buffer)
            #expect(buffer.getInteger(at: 32, as: UInt8.self) == state.rawValue)
            #expect(try ANALogPage(decoding: &buffer) == page)
        }
        #expect(ANAState.change.rawValue == 0x0F)
        #expect(ANAState.persistentLoss.rawValue == 4)
    }

    @Test func rejectsInvalidStateZeroGroupAndTruncation() {
        var buffer = ByteBuffer()
        Self.page.encode(into: &buffer)
        var badState = buffer
        badState.setInteger(UInt8(0x05), at: 32)
        do {
            _ = try ANALogPage(decoding: &badState)
            Issue.record("expected invalid state")
        } catch {
            #expect(error.kind == .invalidField)
            #expect(error.offset == 32)
        }
        #expect(badState.readableBytes == buffer.readableBytes)  // nothing consumed

        var zeroGroup = buffer
        zeroGroup.setInteger(UInt32(0), at: 16, endianness: .little)
        #expect(throws: NVMeWireError.self) { try ANALogPage(decoding: &zeroGroup) }

        var short = buffer.getSlice(at: 0, length: buffer.readableBytes - 1)!
        do {
            _ = try ANALogPage(decoding: &short)
            Issue.record("expected truncated")
        } catch {
            #expect(error.kind == .truncated)
        }
        var tiny = ByteBuffer(bytes: [0, 0, 0])
        #expect(throws: NVMeWireError.self) { try ANALogPage(decoding: &tiny) }
    }
}
