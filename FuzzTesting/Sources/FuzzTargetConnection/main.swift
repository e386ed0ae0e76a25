// FuzzTargetConnection: libFuzzer target over the NVMe/TCP target's connection state machine
// (`QueueConnection` in Sources/NVMeTarget), driven through EmbeddedChannels so one input runs in
// microseconds, with no sockets and no threads.
//
// Input format (see README.md and make_corpus.py):
//   byte 0   options: b1:0 limits profile, b2 host allow-list, b3 close order, b4 fault injection
//   byte 1   seed for the chunking generator
//   rest     up to 4 host->target byte streams separated by the 8-byte marker FF 'NEXTQ' FF FF;
//            stream i is one TCP connection (say: admin queue, then I/O queues). The streams
//            run one after another, each connection staying open until all have run.
//
// Each stream is written in pseudo-random chunk sizes (1 byte to everything) with the event loop
// run between chunks. Afterwards the connections are closed. Checked:
//   - no crash, trap or sanitizer report anywhere in the target;
//   - everything the target sends on each connection is a well-formed C2H PDU sequence
//     (`OutboundChecker`), and each PDU passes the decoder round-trip checks;
//   - once every connection is closed, the subsystem has no controller left (no leaked
//     controller IDs).
//
// Built with -parse-as-library: there is no top-level code; libFuzzer provides `main`.

import FuzzCommon
import Logging
import NIOCore
import NIOEmbedded
import NVMe
import NVMeTarget
import Storage

#if canImport(Dispatch)
import Dispatch
#endif

let subsystemNQN = "nqn.2026-11.io.halyard:fuzz"
let allowedHostNQN = "nqn.2014-08.org.nvmexpress:uuid:1b4e28ba-2fa1-11d2-883f-0016d3ccabcd"
let streamMarker: [UInt8] = [0xFF, 0x4E, 0x45, 0x58, 0x54, 0x51, 0xFF, 0xFF]  // FF "NEXTQ" FF FF
let maximumStreams = 4
/// HALYARD_FUZZ_TRACE=1: print what each connection sends (to look at one input).
let trace = environmentFlag("HALYARD_FUZZ_TRACE")

/// Splits `bytes` at every occurrence of `streamMarker` (at most `maximumStreams` parts; the
/// last part keeps any further markers as data).
func splitStreams(_ bytes: UnsafeRawBufferPointer) -> [UnsafeRawBufferPointer] {
    var parts: [UnsafeRawBufferPointer] = []
    var start = 0
    var i = 0
    let m = streamMarker.count
    while i + m <= bytes.count && parts.count < maximumStreams - 1 {
        if bytes[i] == streamMarker[0] && (0..<m).allSatisfy({ bytes[i + $0] == streamMarker[$0] }) {
            parts.append(UnsafeRawBufferPointer(rebasing: bytes[start..<i]))
            i += m
            start = i
        } else {
            i += 1
        }
    }
    parts.append(UnsafeRawBufferPointer(rebasing: bytes[start...]))
    return parts
}

func limits(profile: UInt8) -> TargetLimits {
    var limits = TargetLimits()
    switch profile {
    case 1:
        // Small everything: H2CData and C2HData chunking, tiny queues, few I/O queues.
        limits.maxQueueEntries = 8
        limits.maxIOQueues = 2
        limits.maxDataTransferShift = 1  // 8 KiB per command
        limits.maxH2CData = 4096
        limits.ioCommandCapsuleSize = 4 + 512 / 16  // 512 bytes in-capsule on I/O queues
        limits.adminInCapsuleDataSize = 1024
    case 2:
        // No in-capsule data on I/O queues: every write needs R2T/H2CData.
        limits.ioCommandCapsuleSize = 4
        limits.maxH2CData = 512
    default:
        break
    }
    return limits
}

/// Chunk sizes: a mix of tiny, small, medium and "the rest" writes.
func nextChunk(_ random: inout FuzzRandom, remaining: Int) -> Int {
    let size: Int
    switch random.next() % 8 {
    case 0: size = 1
    case 1, 2: size = random.next(in: 1...16)
    case 3, 4: size = random.next(in: 1...256)
    case 5: size = random.next(in: 1...4096)
    default: size = remaining
    }
    return min(size, remaining)
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTargetConnection(_ start: UnsafeRawPointer?, _ count: Int) -> CInt {
    let bytes = UnsafeRawBufferPointer(start: start, count: count)
    guard bytes.count >= 2 else { return 0 }
    let options = bytes[0]
    var random = FuzzRandom(seed: UInt64(bytes[1]) | UInt64(options) << 8)
    let streams = splitStreams(UnsafeRawBufferPointer(rebasing: bytes[2...]))

    let loop = EmbeddedEventLoop()
    let limits = limits(profile: options & 0x3)

    // Namespace 1: 512-byte blocks in memory. Namespace 2: 4 KiB blocks behind a fault injector
    // (when b4 is set: random I/O errors and 1 ms of latency, so commands complete out of order
    // and possibly after their connection closed). Both 64 KiB: a MemoryBlockDevice zeroes its
    // whole backing chunk (up to 1 MiB) on the first write, which dominates a small device's cost.
    let plain = MemoryBlockDevice(blockSize: 512, blockCount: 128)
    let faulty = FaultInjectingBlockDevice(wrapping: MemoryBlockDevice(blockSize: 4096, blockCount: 16), seed: UInt64(bytes[1]))
    if options & 0x10 != 0 {
        faulty.injectFailure(trigger: .probability(0.25))
        faulty.addLatency(.milliseconds(1))
    }
    let listener = ListenerConfiguration(host: "127.0.0.1", port: 4420)
    let configuration = TargetConfiguration(
        listeners: [listener],
        discoveryListener: ListenerConfiguration(host: "127.0.0.1", port: 8009),
        subsystems: [SubsystemConfiguration(
            nqn: subsystemNQN, controllerIDRange: 1...2,
            allowedHosts: options & 0x4 != 0 ? [allowedHostNQN] : nil,
            namespaces: [NamespaceConfiguration(namespaceID: 1, device: plain),
                         NamespaceConfiguration(namespaceID: 2, device: faulty)])],
        limits: limits)
    let target = NVMeTCPTarget(configuration: configuration, group: loop,
                               logger: Logger(label: "fuzz", factory: { _ in SwiftLogNoOpLogHandler() }))

    var channels: [EmbeddedChannel] = []
    var checkers: [OutboundChecker] = []
    // Virtual time advanced so far. Kept under the keep-alive grace (2 s): the keep-alive check
    // compares against the wall clock, which an EmbeddedEventLoop does not move.
    var elapsed = TimeAmount.zero

    func drain(_ index: Int) {
        while let out = try? channels[index].readOutbound(as: ByteBuffer.self) {
            checkers[index].append(out)
        }
    }
    func tick() {
        if elapsed < .milliseconds(1500) {
            loop.advanceTime(by: .milliseconds(1))
            elapsed = elapsed + .milliseconds(1)
        } else {
            loop.run()
        }
    }

    for (index, stream) in streams.enumerated() {
        let channel = EmbeddedChannel(loop: loop)
        channel.remoteAddress = try? SocketAddress(ipAddress: "127.0.0.1", port: 50000 + index)
        channel.localAddress = try? SocketAddress(ipAddress: "127.0.0.1", port: listener.port)
        do {
            try channel.pipeline.syncOperations.addHandler(target.makeConnectionHandler(listener: listener))
        } catch {
            fuzzViolation("could not add the connection handler: \(error)")
        }
        channels.append(channel)
        checkers.append(OutboundChecker(label: "connection \(index)", trace: trace))
        _ = channel.connect(to: channel.remoteAddress!)
        loop.run()

        if trace {
            // What the host sends, as far as it decodes.
            var copy = ByteBuffer(fuzzBytes: stream)
            while true {
                do {
                    guard let pdu = try NVMeTCPPDU.decode(from: &copy, maximumLength: Int(UInt32.max)) else {
                        if copy.readableBytes > 0 { traceLine("connection \(index) -> (\(copy.readableBytes) bytes of an incomplete PDU)") }
                        break
                    }
                    traceLine("connection \(index) -> \(describe(pdu))")
                } catch {
                    traceLine("connection \(index) -> (undecodable: \(error); \(copy.readableBytes) bytes)")
                    break
                }
            }
        }

        var offset = 0
        while offset < stream.count && channel.isActive {
            let size = nextChunk(&random, remaining: stream.count - offset)
            var chunk = channel.allocator.buffer(capacity: size)
            chunk.writeBytes(UnsafeRawBufferPointer(rebasing: stream[offset..<(offset + size)]))
            offset += size
            // Errors that reach the end of the pipeline are not the target's to handle here.
            _ = try? channel.writeInbound(chunk)
            tick()
            for i in channels.indices { drain(i) }
        }
        tick()
        for i in channels.indices { drain(i) }
    }

    // Close: in order (admin first, which tears the controller down and closes its I/O queues),
    // or in reverse.
    let order = options & 0x8 != 0 ? Array(channels.indices.reversed()) : Array(channels.indices)
    for i in order {
        _ = channels[i].close()
        loop.run()
        for j in channels.indices { drain(j) }
    }
    loop.advanceTime(by: .milliseconds(10))
    for i in channels.indices {
        drain(i)
        _ = try? channels[i].finish(acceptAlreadyClosed: true)
        drain(i)
        checkers[i].finish()
    }

    for subsystem in target.subsystems.values {
        let left = subsystem.controllers
        fuzzCheck(left.isEmpty, "controllers \(left.map(\.id)) of \(subsystem.nqn) outlive all their connections")
    }
    // Cancel whatever is still scheduled (keep-alive timers, delayed I/O): an EmbeddedEventLoop
    // must not be freed with scheduled tasks.
    loop.shutdownGracefully(queue: .global()) { _ in }
    return 0
}
