/// Admin command opcodes (NVMe base spec 2.0 §5, Figure 138) that Halyard uses.
public enum AdminOpcode: UInt8, Sendable {
    case deleteIOSubmissionQueue = 0x00
    case createIOSubmissionQueue = 0x01
    case getLogPage = 0x02
    case deleteIOCompletionQueue = 0x04
    case createIOCompletionQueue = 0x05
    case identify = 0x06
    case abort = 0x08
    case setFeatures = 0x09
    case getFeatures = 0x0A
    case asyncEventRequest = 0x0C
    case keepAlive = 0x18
    case fabrics = 0x7F
}

/// NVM command set I/O opcodes (NVM command set spec 1.0 §3, Figure 17).
public enum IOOpcode: UInt8, Sendable {
    case flush = 0x00
    case write = 0x01
    case read = 0x02
    case writeUncorrectable = 0x04
    case compare = 0x05
    case writeZeroes = 0x08
    case datasetManagement = 0x09
    case verify = 0x0C
    case reservationRegister = 0x0D
    case reservationReport = 0x0E
    case reservationAcquire = 0x11
    case reservationRelease = 0x15
    case fabrics = 0x7F
}

/// Fabrics command types, SQE byte 4 when the opcode is 0x7F (NVMe over Fabrics spec 1.1 §3, Figure 10).
public enum FabricsCommandType: UInt8, Sendable {
    case propertySet = 0x00
    case connect = 0x01
    case propertyGet = 0x04
    case authenticationSend = 0x05
    case authenticationReceive = 0x06
    case disconnect = 0x08
}
