/// Controller or Namespace Structure values of the Identify command (NVMe 2.0 base spec §5.17.1,
/// Figure 273) that this project handles.
public enum IdentifyCNS: UInt8, Hashable, Sendable, CaseIterable {
    /// 00h Identify Namespace (NVM command set).
    case namespace = 0x00
    /// 01h Identify Controller.
    case controller = 0x01
    /// 02h Active Namespace ID list.
    case activeNamespaceList = 0x02
    /// 03h Namespace Identification Descriptor list.
    case namespaceIdentificationDescriptors = 0x03
    /// 05h I/O Command Set specific Identify Namespace.
    case ioCommandSetNamespace = 0x05
    /// 06h I/O Command Set specific Identify Controller.
    case ioCommandSetController = 0x06
    /// 08h I/O Command Set Independent Identify Namespace.
    case ioCommandSetIndependentNamespace = 0x08
}

/// Identify command CDW10/CDW11 (NVMe 2.0 base spec §5.17, Figures 271/272): CDW10 {CNS b7:0,
/// CNTID b31:16}, CDW11 {CNS Specific Identifier b15:0, CSI b31:24}. Every Identify returns 4096 bytes.
public struct IdentifyCommandFields: Hashable, Sendable {
    /// CNS (raw, since unknown values are answered with Invalid Field).
    public var cns: UInt8
    /// Controller Identifier.
    public var controllerID: UInt16
    /// CNS Specific Identifier.
    public var cnsSpecificIdentifier: UInt16
    /// Command Set Identifier (0 = NVM).
    public var commandSetIdentifier: UInt8

    public static let dataLength = 4096

    public init(cns: UInt8, controllerID: UInt16 = 0, cnsSpecificIdentifier: UInt16 = 0, commandSetIdentifier: UInt8 = 0) {
        self.cns = cns
        self.controllerID = controllerID
        self.cnsSpecificIdentifier = cnsSpecificIdentifier
        self.commandSetIdentifier = commandSetIdentifier
    }

    public init(structure: IdentifyCNS, controllerID: UInt16 = 0, commandSetIdentifier: UInt8 = 0) {
        self.init(cns: structure.rawValue, controllerID: controllerID, commandSetIdentifier: commandSetIdentifier)
    }

    /// Parses an Identify SQE's CDW10 and CDW11.
    public init(cdw10: UInt32, cdw11: UInt32) {
        cns = UInt8(truncatingIfNeeded: cdw10)
        controllerID = UInt16(truncatingIfNeeded: cdw10 >> 16)
        cnsSpecificIdentifier = UInt16(truncatingIfNeeded: cdw11)
        commandSetIdentifier = UInt8(truncatingIfNeeded: cdw11 >> 24)
    }

    /// The CNS, if it is one this project knows.
    public var structure: IdentifyCNS? { IdentifyCNS(rawValue: cns) }

    public var cdw10: UInt32 { UInt32(cns) | UInt32(controllerID) << 16 }
    public var cdw11: UInt32 { UInt32(cnsSpecificIdentifier) | UInt32(commandSetIdentifier) << 24 }
}
