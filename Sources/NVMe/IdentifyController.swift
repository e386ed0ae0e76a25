import NIOCore

/// Identify Controller data structure, CNS 01h (NVMe 2.0 base spec §5.17.2.1, Figure 275; the
/// Fabrics-only fields at 1792.. from NVMe over Fabrics). 4096 bytes; fields not modelled here
/// (power state descriptors, capacities, host memory buffer, …) are written as zero.
///
/// Multi-byte fields are little-endian. Text fields are ASCII, space padded (SN/MN/FR) or NUL
/// padded (SUBNQN); decoding drops the padding.
public struct IdentifyController: Hashable, Sendable {
    /// Byte 0: PCI Vendor ID.
    public var vid: UInt16
    /// Byte 2: PCI Subsystem Vendor ID.
    public var ssvid: UInt16
    /// Bytes 4..23: serial number, same on every controller of the subsystem.
    public var serialNumber: String
    /// Bytes 24..63: model number, same on every controller of the subsystem.
    public var modelNumber: String
    /// Bytes 64..71: firmware revision.
    public var firmwareRevision: String
    /// Byte 72: Recommended Arbitration Burst.
    public var rab: UInt8
    /// Bytes 73..75: IEEE OUI (low 24 bits, little-endian on the wire).
    public var ieee: UInt32
    /// Byte 76: CMIC (b0 multi-port, b1 multi-controller, b3 ANA reporting).
    public var cmic: UInt8
    /// Byte 77: MDTS, 2^n minimum pages; 0 = no limit.
    public var mdts: UInt8
    /// Byte 78: Controller ID (= the Connect result).
    public var cntlid: UInt16
    /// Byte 80: Version (same encoding as the VS property, e.g. 0x00020000 = 2.0).
    public var version: UInt32
    /// Byte 84: RTD3 Resume Latency (µs).
    public var rtd3r: UInt32
    /// Byte 88: RTD3 Entry Latency (µs).
    public var rtd3e: UInt32
    /// Byte 92: Optional Asynchronous Events Supported (b8 NS attr, b11 ANA change, b31 discovery).
    public var oaes: UInt32
    /// Byte 96: Controller Attributes (b0 128-bit host ID, b6 TBKAS, b15 ELBAS).
    public var ctratt: UInt32
    /// Byte 111: Controller Type (1 I/O, 2 discovery, 3 administrative).
    public var cntrltype: UInt8
    /// Bytes 112..127: FRU Globally Unique Identifier (16 bytes; zeros = not reported).
    public var fguid: [UInt8]
    /// Bytes 128/130/132: Command Retry Delay Times (100 ms units).
    public var crdt1: UInt16
    public var crdt2: UInt16
    public var crdt3: UInt16
    /// Byte 256: Optional Admin Command Support.
    public var oacs: UInt16
    /// Byte 258: Abort Command Limit (0's based).
    public var acl: UInt8
    /// Byte 259: Asynchronous Event Request Limit (0's based).
    public var aerl: UInt8
    /// Byte 260: Firmware Updates.
    public var frmw: UInt8
    /// Byte 261: Log Page Attributes (b1 effects log, b2 extended data).
    public var lpa: UInt8
    /// Byte 262: Error Log Page Entries (0's based).
    public var elpe: UInt8
    /// Byte 263: Number of Power States Support (0's based).
    public var npss: UInt8
    /// Byte 264: Admin Vendor Specific Command Configuration.
    public var avscc: UInt8
    /// Byte 265: Autonomous Power State Transition Attributes.
    public var apsta: UInt8
    /// Byte 266: Warning Composite Temperature Threshold (Kelvin).
    public var wctemp: UInt16
    /// Byte 268: Critical Composite Temperature Threshold (Kelvin).
    public var cctemp: UInt16
    /// Byte 320: Keep Alive Support granularity (100 ms units); must be non-zero for an I/O controller.
    public var kas: UInt16
    /// Byte 342: ANA Transition Time (seconds).
    public var anatt: UInt8
    /// Byte 343: ANA Capabilities (b0..b4 states reported, b6 static ANAGRPID, b7 non-zero ANAGRPID).
    public var anacap: UInt8
    /// Byte 344: ANA Group Identifier Maximum.
    public var anagrpmax: UInt32
    /// Byte 348: Number of ANA Group Identifiers.
    public var nanagrpid: UInt32
    /// Byte 512: Submission Queue Entry Size (b3:0 required, b7:4 maximum; 0x66 = 64 bytes).
    public var sqes: UInt8
    /// Byte 513: Completion Queue Entry Size (0x44 = 16 bytes).
    public var cqes: UInt8
    /// Byte 514: Maximum Outstanding Commands.
    public var maxcmd: UInt16
    /// Byte 516: Number of Namespaces (the maximum valid NSID).
    public var nn: UInt32
    /// Byte 520: Optional NVM Command Support (b2 DSM, b3 Write Zeroes, b5 Reservations).
    public var oncs: UInt16
    /// Byte 522: Fused Operation Support.
    public var fuses: UInt16
    /// Byte 524: Format NVM Attributes.
    public var fna: UInt8
    /// Byte 525: Volatile Write Cache (b0 present).
    public var vwc: UInt8
    /// Byte 526: Atomic Write Unit Normal (0's based, blocks).
    public var awun: UInt16
    /// Byte 528: Atomic Write Unit Power Fail (0's based, blocks).
    public var awupf: UInt16
    /// Byte 530: I/O Command Set Vendor Specific Command Configuration.
    public var icsvscc: UInt8
    /// Byte 531: Namespace Write Protection Capabilities.
    public var nwpc: UInt8
    /// Byte 532: Atomic Compare & Write Unit (0's based).
    public var acwu: UInt16
    /// Byte 534: Optional Copy Formats Supported.
    public var ocfs: UInt16
    /// Byte 536: SGL Support (b1:0 = 01 SGLs supported; b20 offset for in-capsule data).
    public var sgls: UInt32
    /// Byte 540: Maximum Number of Allowed Namespaces.
    public var mnan: UInt32
    /// Bytes 768..1023: NVM Subsystem NQN, NUL padded.
    public var subnqn: String
    /// Byte 1792: I/O Queue Command Capsule Supported Size (16-byte units, ≥ 4).
    public var ioccsz: UInt32
    /// Byte 1796: I/O Queue Response Capsule Supported Size (16-byte units, ≥ 1).
    public var iorcsz: UInt32
    /// Byte 1800: In Capsule Data Offset (16-byte units; 0 for TCP).
    public var icdoff: UInt16
    /// Byte 1802: Fabrics Controller Attributes.
    public var fcatt: UInt8
    /// Byte 1803: Maximum SGL Data Block Descriptors.
    public var msdbd: UInt8
    /// Byte 1804: Optional Fabric Commands Support.
    public var ofcs: UInt16

    public static let encodedSize = 4096

    /// All fields default to zero / empty except SQES 0x66 and CQES 0x44, which Fabrics requires.
    public init(
        vid: UInt16 = 0, ssvid: UInt16 = 0,
        serialNumber: String = "", modelNumber: String = "", firmwareRevision: String = "",
        rab: UInt8 = 0, ieee: UInt32 = 0, cmic: UInt8 = 0, mdts: UInt8 = 0, cntlid: UInt16 = 0,
        version: UInt32 = 0, rtd3r: UInt32 = 0, rtd3e: UInt32 = 0, oaes: UInt32 = 0, ctratt: UInt32 = 0,
        cntrltype: UInt8 = 0, fguid: [UInt8] = [UInt8](repeating: 0, count: 16),
        crdt1: UInt16 = 0, crdt2: UInt16 = 0, crdt3: UInt16 = 0,
        oacs: UInt16 = 0, acl: UInt8 = 0, aerl: UInt8 = 0, frmw: UInt8 = 0, lpa: UInt8 = 0, elpe: UInt8 = 0,
        npss: UInt8 = 0, avscc: UInt8 = 0, apsta: UInt8 = 0, wctemp: UInt16 = 0, cctemp: UInt16 = 0,
        kas: UInt16 = 0, anatt: UInt8 = 0, anacap: UInt8 = 0, anagrpmax: UInt32 = 0, nanagrpid: UInt32 = 0,
        sqes: UInt8 = 0x66, cqes: UInt8 = 0x44, maxcmd: UInt16 = 0, nn: UInt32 = 0,
        oncs: UInt16 = 0, fuses: UInt16 = 0, fna: UInt8 = 0, vwc: UInt8 = 0, awun: UInt16 = 0, awupf: UInt16 = 0,
        icsvscc: UInt8 = 0, nwpc: UInt8 = 0, acwu: UInt16 = 0, ocfs: UInt16 = 0, sgls: UInt32 = 0, mnan: UInt32 = 0,
        subnqn: String = "",
        ioccsz: UInt32 = 0, iorcsz: UInt32 = 0, icdoff: UInt16 = 0, fcatt: UInt8 = 0, msdbd: UInt8 = 0,
        ofcs: UInt16 = 0
    ) {
        precondition(fguid.count == 16, "FGUID is 16 bytes")
        self.vid = vid
        self.ssvid = ssvid
        self.serialNumber = serialNumber
        self.modelNumber = modelNumber
        self.firmwareRevision = firmwareRevision
        self.rab = rab
        self.ieee = ieee
        self.cmic = cmic
        self.mdts = mdts
        self.cntlid = cntlid
        self.version = version
        self.rtd3r = rtd3r
        self.rtd3e = rtd3e
        self.oaes = oaes
        self.ctratt = ctratt
        self.cntrltype = cntrltype
        self.fguid = fguid
        self.crdt1 = crdt1
        self.crdt2 = crdt2
        self.crdt3 = crdt3
        self.oacs = oacs
        self.acl = acl
        self.aerl = aerl
        self.frmw = frmw
        self.lpa = lpa
        self.elpe = elpe
        self.npss = npss
        self.avscc = avscc
        self.apsta = apsta
        self.wctemp = wctemp
        self.cctemp = cctemp
        self.kas = kas
        self.anatt = anatt
        self.anacap = anacap
        self.anagrpmax = anagrpmax
        self.nanagrpid = nanagrpid
        self.sqes = sqes
        self.cqes = cqes
        self.maxcmd = maxcmd
        self.nn = nn
        self.oncs = oncs
        self.fuses = fuses
        self.fna = fna
        self.vwc = vwc
        self.awun = awun
        self.awupf = awupf
        self.icsvscc = icsvscc
        self.nwpc = nwpc
        self.acwu = acwu
        self.ocfs = ocfs
        self.sgls = sgls
        self.mnan = mnan
        self.subnqn = subnqn
        self.ioccsz = ioccsz
        self.iorcsz = iorcsz
        self.icdoff = icdoff
        self.fcatt = fcatt
        self.msdbd = msdbd
        self.ofcs = ofcs
    }

    /// Writes exactly 4096 bytes.
    public func encode(into buffer: inout ByteBuffer) {
        let base = buffer.writerIndex
        buffer.writeZeros(Self.encodedSize)
        func put<T: FixedWidthInteger>(_ value: T, _ offset: Int) {
            buffer.setInteger(value, at: base + offset, endianness: .little)
        }
        func putASCII(_ string: String, _ offset: Int, width: Int, pad: UInt8) {
            var field = ByteBuffer()
            field.writeFixedASCII(string, width: width, pad: pad)
            buffer.setBuffer(field, at: base + offset)
        }
        put(vid, 0)
        put(ssvid, 2)
        putASCII(serialNumber, 4, width: 20, pad: 0x20)
        putASCII(modelNumber, 24, width: 40, pad: 0x20)
        putASCII(firmwareRevision, 64, width: 8, pad: 0x20)
        put(rab, 72)
        put(UInt8(truncatingIfNeeded: ieee), 73)
        put(UInt8(truncatingIfNeeded: ieee >> 8), 74)
        put(UInt8(truncatingIfNeeded: ieee >> 16), 75)
        put(cmic, 76)
        put(mdts, 77)
        put(cntlid, 78)
        put(version, 80)
        put(rtd3r, 84)
        put(rtd3e, 88)
        put(oaes, 92)
        put(ctratt, 96)
        put(cntrltype, 111)
        buffer.setBytes(fguid.prefix(16), at: base + 112)
        put(crdt1, 128)
        put(crdt2, 130)
        put(crdt3, 132)
        put(oacs, 256)
        put(acl, 258)
        put(aerl, 259)
        put(frmw, 260)
        put(lpa, 261)
        put(elpe, 262)
        put(npss, 263)
        put(avscc, 264)
        put(apsta, 265)
        put(wctemp, 266)
        put(cctemp, 268)
        put(kas, 320)
        put(anatt, 342)
        put(anacap, 343)
        put(anagrpmax, 344)
        put(nanagrpid, 348)
        put(sqes, 512)
        put(cqes, 513)
        put(maxcmd, 514)
        put(nn, 516)
        put(oncs, 520)
        put(fuses, 522)
        put(fna, 524)
        put(vwc, 525)
        put(awun, 526)
        put(awupf, 528)
        put(icsvscc, 530)
        put(nwpc, 531)
        put(acwu, 532)
        put(ocfs, 534)
        put(sgls, 536)
        put(mnan, 540)
        putASCII(subnqn, 768, width: 256, pad: 0)
        put(ioccsz, 1792)
        put(iorcsz, 1796)
        put(icdoff, 1800)
        put(fcatt, 1802)
        put(msdbd, 1803)
        put(ofcs, 1804)
    }

    /// Reads exactly 4096 bytes; throws `.truncated` if fewer are readable.
    public init(decoding buffer: inout ByteBuffer) throws(NVMeWireError) {
        guard let page = buffer.readSlice(length: Self.encodedSize) else {
            throw NVMeWireError(
                .truncated, offset: buffer.readableBytes,
                "Identify Controller data needs 4096 bytes, have \(buffer.readableBytes)")
        }
        func get<T: FixedWidthInteger>(_ offset: Int, as type: T.Type = T.self) -> T {
            page.getInteger(at: offset, endianness: .little, as: T.self)!
        }
        func getASCII(_ offset: Int, width: Int) -> String {
            var field = page.getSlice(at: offset, length: width)!
            return field.readFixedASCII(width: width)!
        }
        vid = get(0)
        ssvid = get(2)
        serialNumber = getASCII(4, width: 20)
        modelNumber = getASCII(24, width: 40)
        firmwareRevision = getASCII(64, width: 8)
        rab = get(72)
        ieee = UInt32(get(73, as: UInt8.self)) | UInt32(get(74, as: UInt8.self)) << 8
            | UInt32(get(75, as: UInt8.self)) << 16
        cmic = get(76)
        mdts = get(77)
        cntlid = get(78)
        version = get(80)
        rtd3r = get(84)
        rtd3e = get(88)
        oaes = get(92)
        ctratt = get(96)
        cntrltype = get(111)
        fguid = page.getBytes(at: 112, length: 16)!
        crdt1 = get(128)
        crdt2 = get(130)
        crdt3 = get(132)
        oacs = get(256)
        acl = get(258)
        aerl = get(259)
        frmw = get(260)
        lpa = get(261)
        elpe = get(262)
        npss = get(263)
        avscc = get(264)
        apsta = get(265)
        wctemp = get(266)
        cctemp = get(268)
        kas = get(320)
        anatt = get(342)
        anacap = get(343)
        anagrpmax = get(344)
        nanagrpid = get(348)
        sqes = get(512)
        cqes = get(513)
        maxcmd = get(514)
        nn = get(516)
        oncs = get(520)
        fuses = get(522)
        fna = get(524)
        vwc = get(525)
        awun = get(526)
        awupf = get(528)
        icsvscc = get(530)
        nwpc = get(531)
        acwu = get(532)
        ocfs = get(534)
        sgls = get(536)
        mnan = get(540)
        subnqn = getASCII(768, width: 256)
        ioccsz = get(1792)
        iorcsz = get(1796)
        icdoff = get(1800)
        fcatt = get(1802)
        msdbd = get(1803)
        ofcs = get(1804)
    }
}
