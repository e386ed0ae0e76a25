import NIOCore

/// SMART / Health Information log page 02h (NVMe 2.0 base spec §5.16.1.3, Figure 207): 512 bytes.
///
/// The spec's 128-bit counters (bytes 32..191) are modelled as `UInt64`: encoding writes the
/// value in the low 8 bytes and zeros in the high 8; decoding saturates to `UInt64.max` when the
/// high half is non-zero. Unmodelled fields (temperature sensors, thermal management) are zero.
public struct SMARTLog: Hashable, Sendable {
    /// Byte 0: Critical Warning bits (b0 spare, b1 temperature, b2 reliability, b3 read-only, b4 VMB, b5 PMR).
    public var criticalWarning: UInt8
    /// Byte 1: Composite Temperature, Kelvin.
    public var compositeTemperature: UInt16
    /// Byte 3: Available Spare, percent.
    public var availableSpare: UInt8
    /// Byte 4: Available Spare Threshold, percent.
    public var availableSpareThreshold: UInt8
    /// Byte 5: Percentage Used.
    public var percentageUsed: UInt8
    /// Byte 6: Endurance Group Critical Warning Summary.
    public var enduranceGroupCriticalWarningSummary: UInt8
    /// Byte 32: Data Units Read (thousands of 512-byte units).
    public var dataUnitsRead: UInt64
    /// Byte 48: Data Units Written (thousands of 512-byte units).
    public var dataUnitsWritten: UInt64
    /// Byte 64: Host Read Commands.
    public var hostReadCommands: UInt64
    /// Byte 80: Host Write Commands.
    public var hostWriteCommands: UInt64
    /// Byte 96: Controller Busy Time (minutes).
    public var controllerBusyTime: UInt64
    /// Byte 112: Power Cycles.
    public var powerCycles: UInt64
    /// Byte 128: Power On Hours.
    public var powerOnHours: UInt64
    /// Byte 144: Unsafe Shutdowns.
    public var unsafeShutdowns: UInt64
    /// Byte 160: Media and Data Integrity Errors.
    public var mediaErrors: UInt64
    /// Byte 176: Number of Error Information Log Entries.
    public var numberOfErrorLogEntries: UInt64
    /// Byte 192: Warning Composite Temperature Time (minutes).
    public var warningCompositeTemperatureTime: UInt32
    /// Byte 196: Critical Composite Temperature Time (minutes).
    public var criticalCompositeTemperatureTime: UInt32

    public static let encodedSize = 512

    public init(
        criticalWarning: UInt8 = 0, compositeTemperature: UInt16 = 0, availableSpare: UInt8 = 0,
        availableSpareThreshold: UInt8 = 0, percentageUsed: UInt8 = 0, enduranceGroupCriticalWarningSummary: UInt8 = 0,
        dataUnitsRead: UInt64 = 0, dataUnitsWritten: UInt64 = 0, hostReadCommands: UInt64 = 0,
        hostWriteCommands: UInt64 = 0, controllerBusyTime: UInt64 = 0, powerCycles: UInt64 = 0,
        powerOnHours: UInt64 = 0, unsafeShutdowns: UInt64 = 0, mediaErrors: UInt64 = 0,
        numberOfErrorLogEntries: UInt64 = 0, warningCompositeTemperatureTime: UInt32 = 0,
        criticalCompositeTemperatureTime: UInt32 = 0
    ) {
        self.criticalWarning = criticalWarning
        self.compositeTemperature = compositeTemperature
        self.availableSpare = availableSpare
        self.availableSpareThreshold = availableSpareThreshold
        self.percentageUsed = percentageUsed
        self.enduranceGroupCriticalWarningSummary = enduranceGroupCriticalWarningSummary
        self.dataUnitsRead = dataUnitsRead
        self.dataUnitsWritten = dataUnitsWritten
        self.hostReadCommands = hostReadCommands
        self.hostWriteCommands = hostWriteCommands
        self.controllerBusyTime = controllerBusyTime
        self.powerCycles = powerCycles
        self.powerOnHours = powerOnHours
        self.unsafeShutdowns = unsafeShutdowns
        self.mediaErrors = mediaErrors
        self.numberOfErrorLogEntries = numberOfErrorLogEntries
        self.warningCompositeTemperatureTime = warningCompositeTemperatureTime
        self.criticalCompositeTemperatureTime = criticalCompositeTemperatureTime
    }

    private var counters: [UInt64] {
        [dataUnitsRead, dataUnitsWritten, hostReadCommands, hostWriteCommands, controllerBusyTime,
         powerCycles, powerOnHours, unsafeShutdowns, mediaErrors, numberOfErrorLogEntries]
    }

    /// Writes exactly 512 bytes.
    public func encode(into buffer: inout ByteBuffer) {
        buffer.writeInteger(criticalWarning, endianness: .little)  // 0
        buffer.writeInteger(compositeTemperature, endianness: .little)  // 1
        buffer.writeInteger(availableSpare, endianness: .little)  // 3
        buffer.writeInteger(availableSpareThreshold, endianness: .little)  // 4
        buffer.writeInteger(percentageUsed, endianness: .little)  // 5
        buffer.writeInteger(enduranceGroupCriticalWarningSummary, endianness: .little)  // 6
        buffer.writeZeros(32 - 7)
        for counter in counters {  // 32, 48, …, 176: 128-bit, low half first
            buffer.writeInteger(counter, endianness: .little)
            buffer.writeInteger(UInt64(0), endianness: .little)
        }
        buffer.writeInteger(warningCompositeTemperatureTime, endianness: .little)  // 192
        buffer.writeInteger(criticalCompositeTemperatureTime, endianness: .little)  // 196
        buffer.writeZeros(Self.encodedSize - 200)
    }

    /// Reads exactly 512 bytes; throws `.truncated` if fewer are readable.
    public init(decoding buffer: inout ByteBuffer) throws(NVMeWireError) {
        guard buffer.readableBytes >= Self.encodedSize else {
            throw NVMeWireError(
                .truncated, offset: buffer.readableBytes,
                "SMART / Health log needs 512 bytes, have \(buffer.readableBytes)")
        }
        criticalWarning = buffer.readInteger(endianness: .little, as: UInt8.self)!
        compositeTemperature = buffer.readInteger(endianness: .little, as: UInt16.self)!
        availableSpare = buffer.readInteger(endianness: .little, as: UInt8.self)!
        availableSpareThreshold = buffer.readInteger(endianness: .little, as: UInt8.self)!
        percentageUsed = buffer.readInteger(endianness: .little, as: UInt8.self)!
        enduranceGroupCriticalWarningSummary = buffer.readInteger(endianness: .little, as: UInt8.self)!
        buffer.moveReaderIndex(forwardBy: 32 - 7)
        var counters: [UInt64] = []
        for _ in 0..<10 {
            let low = buffer.readInteger(endianness: .little, as: UInt64.self)!
            let high = buffer.readInteger(endianness: .little, as: UInt64.self)!
            counters.append(high == 0 ? low : .max)
        }
        dataUnitsRead = counters[0]
        dataUnitsWritten = counters[1]
        hostReadCommands = counters[2]
        hostWriteCommands = counters[3]
        controllerBusyTime = counters[4]
        powerCycles = counters[5]
        powerOnHours = counters[6]
        unsafeShutdowns = counters[7]
        mediaErrors = counters[8]
        numberOfErrorLogEntries = counters[9]
        warningCompositeTemperatureTime = buffer.readInteger(endianness: .little, as: UInt32.self)!
        criticalCompositeTemperatureTime = buffer.readInteger(endianness: .little, as: UInt32.self)!
        buffer.moveReaderIndex(forwardBy: Self.encodedSize - 200)
    }
}
