import ArgumentParser
import Foundation
import NIOCore
import NVMe
import NVMeHost

/// `halyard nvme write`: writes a file's contents or a repeated byte.
struct NVMeWriteCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "write",
        abstract: "Write blocks from a file or filled with one byte.",
        discussion: """
              halyard nvme write -a HOST -s PORT -n NQN --lba L (--input FILE | --pattern BYTE) [--blocks N]
            --input without --blocks writes the whole file, its last block padded with zeros; with \
            --blocks it writes that many blocks (the file's first bytes, zero padded). --pattern \
            writes --blocks blocks (default 1) of the byte (decimal or 0x hex). With several -a/-s \
            paths the namespace is written through all of them (multipath, with failover).
            """)

    @OptionGroup var common: NVMeConnectionOptions

    @Option(help: "First logical block.")
    var lba: UInt64

    @Option(help: "Number of logical blocks (default: the whole --input file, or 1 with --pattern).")
    var blocks: UInt64?

    @Option(help: ArgumentHelp("File whose bytes are written.", valueName: "FILE"))
    var input: String?

    @Option(help: ArgumentHelp("Fill every byte with this value (e.g. 0xa5 or 165).", valueName: "BYTE"))
    var pattern: String?

    @Flag(help: "Force Unit Access: the target persists each write before completing it.")
    var fua = false

    func validate() throws {
        guard (input == nil) != (pattern == nil) else { throw ValidationError("give exactly one of --input FILE or --pattern BYTE") }
        if let pattern, parseByte(pattern) == nil {
            throw ValidationError("invalid --pattern '\(pattern)': give a byte, 0-255 or 0x00-0xff")
        }
        if let blocks {
            guard blocks >= 1, blocks <= 1 << 24 else { throw ValidationError("--blocks must be 1-16777216") }
        }
    }

    func run() async throws {
        try await runNVMeCommand(logLevel: common.logLevel) {
            let nqn = try common.requireNQN()
            var fileData: Data? = nil
            if let input {
                do {
                    fileData = try Data(contentsOf: URL(fileURLWithPath: input))
                } catch {
                    throw CLIError("cannot read \(input): \(error.localizedDescription)")
                }
                guard !fileData!.isEmpty || blocks != nil else { throw CLIError("\(input) is empty: nothing to write") }
            }
            let session = try NVMeCLISession(common)
            let (count, bs) = try await session.run { session in
                let target = try await CLIBlockTarget.open(session, common: common, nqn: nqn)
                let namespace = target.namespace
                let bs = namespace.blockSize
                let count: UInt64
                var buffer: ByteBuffer
                if let fileData {
                    count = blocks ?? (UInt64(fileData.count) + UInt64(bs) - 1) / UInt64(bs)
                    try BlockTransfer.checkRange(lba: lba, blocks: count, namespace: namespace)
                    let total = Int(count) * bs
                    buffer = ByteBuffer()
                    buffer.reserveCapacity(total)
                    buffer.writeBytes(fileData.prefix(total))
                    buffer.writeRepeatingByte(0, count: total - buffer.readableBytes)
                } else {
                    count = blocks ?? 1
                    try BlockTransfer.checkRange(lba: lba, blocks: count, namespace: namespace)
                    buffer = ByteBuffer(repeating: parseByte(pattern!)!, count: Int(count) * bs)
                }
                try await target.write(lba: lba, data: buffer, fua: fua)
                return (count, bs)
            }
            writeStdout("wrote \(count) blocks of \(bs) bytes at LBA \(lba)\n")
        }
    }
}
