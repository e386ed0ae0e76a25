// A minimal TCP request/response ping-pong: the ceiling of the kernel TCP stack on loopback for
// the message sizes NVMe/TCP moves, with no NVMe logic. Blocking POSIX sockets, TCP_NODELAY,
// one connection, `--qd` requests pipelined (each response lets the next request go). Both sides
// read whatever has arrived and answer it with one write, as an event loop does.
//
// Every request starts with 8 bytes: u32 request size, u32 response size (little-endian); the
// server reads the whole request and answers with a response of that size.
//
//   swiftc -O Benchmarks/pingpong.swift -o pingpong
//   pingpong server --port 5300
//   pingpong client --port 5300 --req 72 --resp 4120 --qd 32 --time 10 --warmup 1
//
// The client prints one JSON object: iops, mib_per_s (payload = the larger of request and
// response minus the 72/24-byte header stand-ins), latency mean/p50/p99/p99.9/max in µs, and
// its own CPU time (user + system) per request over the measured window.
import Foundation
#if canImport(Glibc)
import Glibc
#endif

func die(_ message: String) -> Never {
    FileHandle.standardError.write(Data("pingpong: \(message)\n".utf8))
    exit(1)
}

func processCPUNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

func nowNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

func readFully(_ fd: Int32, _ buffer: UnsafeMutableRawPointer, _ count: Int) -> Bool {
    var done = 0
    while done < count {
        let n = read(fd, buffer + done, count - done)
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { return false }
        done += n
    }
    return true
}

func writeFully(_ fd: Int32, _ buffer: UnsafeRawPointer, _ count: Int) -> Bool {
    var done = 0
    while done < count {
        let n = write(fd, buffer + done, count - done)
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { return false }
        done += n
    }
    return true
}

func setNoDelay(_ fd: Int32) {
    var one: Int32 = 1
    _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
}

func address(host: String, port: Int) -> sockaddr_in {
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = in_port_t(UInt16(port).bigEndian)
    guard inet_pton(AF_INET, host, &addr.sin_addr) == 1 else { die("not an IPv4 address: \(host)") }
    return addr
}

let maxMessage = 4 << 20

/// Reads whatever has arrived, answers every complete request in it with one write: batching like
/// an event-loop server (SwiftNIO reads many PDUs per read(2) and flushes once).
func serve(_ fd: Int32) {
    setNoDelay(fd)
    let capacity = 8 << 20
    let input = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 64)
    let output = UnsafeMutableRawPointer.allocate(byteCount: maxMessage, alignment: 64)
    memset(output, 0xA5, maxMessage)
    defer { input.deallocate(); output.deallocate(); close(fd) }
    var have = 0
    while true {
        let n = read(fd, input + have, capacity - have)
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { return }
        have += n
        var offset = 0
        var reply = 0
        while have - offset >= 8 {
            let req = Int(input.loadUnaligned(fromByteOffset: offset, as: UInt32.self).littleEndian)
            let resp = Int(input.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self).littleEndian)
            guard req >= 8, req <= maxMessage, resp >= 1, resp <= maxMessage else { return }
            guard have - offset >= req else { break }
            offset += req
            reply += resp
        }
        if offset > 0 {
            memmove(input, input + offset, have - offset)
            have -= offset
        }
        while reply > 0 {
            let chunk = min(reply, maxMessage)
            guard writeFully(fd, output, chunk) else { return }
            reply -= chunk
        }
    }
}

func runServer(host: String, port: Int) -> Never {
    let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard listener >= 0 else { die("socket: \(errno)") }
    var one: Int32 = 1
    _ = setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
    var addr = address(host: host, port: port)
    let bound = withUnsafePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard bound == 0 else { die("bind \(host):\(port): errno \(errno)") }
    guard listen(listener, 16) == 0 else { die("listen: errno \(errno)") }
    while true {
        let fd = accept(listener, nil, nil)
        if fd < 0 { if errno == EINTR { continue }; die("accept: errno \(errno)") }
        Thread.detachNewThread { serve(fd) }
    }
}

func runClient(host: String, port: Int, request: Int, response: Int, depth: Int, seconds: Double, warmup: Double) {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { die("socket: errno \(errno)") }
    var addr = address(host: host, port: port)
    var connected = false
    for _ in 0..<50 {  // the server may still be starting
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if rc == 0 { connected = true; break }
        usleep(100_000)
    }
    guard connected else { die("connect \(host):\(port): errno \(errno)") }
    setNoDelay(fd)
    let out = UnsafeMutableRawPointer.allocate(byteCount: max(request, 8), alignment: 64)
    memset(out, 0x5A, max(request, 8))
    out.storeBytes(of: UInt32(request).littleEndian, toByteOffset: 0, as: UInt32.self)
    out.storeBytes(of: UInt32(response).littleEndian, toByteOffset: 4, as: UInt32.self)

    // All requests are the same, so a batch of k requests is the first k·request bytes of this.
    let batch = UnsafeMutableRawPointer.allocate(byteCount: depth * request, alignment: 64)
    for i in 0..<depth { memcpy(batch + i * request, out, request) }
    let capacity = max(8 << 20, response)
    let input = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 64)

    var sent = [UInt64](repeating: 0, count: depth)  // send times, FIFO (responses come in order)
    var head = 0, tail = 0
    var latencies: [UInt64] = []
    latencies.reserveCapacity(4_000_000)
    let start = nowNanoseconds()
    let measureFrom = start + UInt64(warmup * 1e9)
    let end = measureFrom + UInt64(seconds * 1e9)
    func send(_ k: Int) {
        let t = nowNanoseconds()
        for _ in 0..<k {
            sent[tail] = t
            tail = (tail + 1) % depth
        }
        guard writeFully(fd, batch, k * request) else { die("write failed") }
    }
    send(depth)
    var count: UInt64 = 0
    var now = start
    var measuredStart: UInt64 = 0
    var cpuStart: UInt64 = 0
    var partial = 0  // bytes of a response not complete yet
    var outstanding = depth
    while now < end {
        // Whatever has arrived: every complete response lets one more request go, in one write.
        let n = read(fd, input, capacity)
        if n < 0 && errno == EINTR { continue }
        guard n > 0 else { die("read failed") }
        partial += n
        let done = partial / response
        partial -= done * response
        guard done > 0 else { continue }
        now = nowNanoseconds()
        for _ in 0..<done {
            let latency = now - sent[head]
            head = (head + 1) % depth
            if now >= measureFrom {
                if measuredStart == 0 { measuredStart = now; cpuStart = processCPUNanoseconds() }
                latencies.append(latency)
                count += 1
            }
        }
        outstanding -= done
        if now < end {
            send(done)
            outstanding += done
        }
    }
    let cpu = processCPUNanoseconds() - cpuStart
    // Drain what is still in flight.
    var remaining = outstanding * response - partial
    while remaining > 0 {
        let n = read(fd, input, min(capacity, remaining))
        if n <= 0 { break }
        remaining -= n
    }
    close(fd)
    let elapsed = Double(now - measuredStart) / 1e9
    latencies.sort()
    func pct(_ p: Double) -> Double {
        guard !latencies.isEmpty else { return 0 }
        let i = min(latencies.count - 1, Int((p / 100 * Double(latencies.count)).rounded(.up)) - 1)
        return Double(latencies[max(0, i)]) / 1000
    }
    let mean = latencies.isEmpty ? 0 : Double(latencies.reduce(0, +)) / Double(latencies.count) / 1000
    let payload = Double(max(request - 72, response - 24, 0))
    let result: [String: Any] = [
        "request_bytes": request, "response_bytes": response, "queue_depth": depth, "time_s": seconds,
        "ios": count, "elapsed_s": elapsed,
        "iops": Double(count) / elapsed, "mib_per_s": Double(count) * payload / elapsed / 1_048_576,
        "lat_mean_us": mean, "lat_p50_us": pct(50), "lat_p99_us": pct(99), "lat_p99_9_us": pct(99.9),
        "lat_max_us": Double(latencies.last ?? 0) / 1000,
        "cpu_us_per_io": count == 0 ? 0 : Double(cpu) / Double(count) / 1000,
    ]
    let data = try! JSONSerialization.data(withJSONObject: result, options: [.sortedKeys])
    FileHandle.standardOutput.write(data + Data("\n".utf8))
}

// MARK: Arguments

var arguments = Array(CommandLine.arguments.dropFirst())
guard let mode = arguments.first, mode == "server" || mode == "client" else {
    die("usage: pingpong server [--host H] --port P | client [--host H] --port P --req BYTES --resp BYTES [--qd N] [--time S] [--warmup S]")
}
arguments.removeFirst()
var options: [String: String] = [:]
while arguments.count >= 2, arguments[0].hasPrefix("--") {
    options[String(arguments[0].dropFirst(2))] = arguments[1]
    arguments.removeFirst(2)
}
guard arguments.isEmpty else { die("unexpected arguments: \(arguments)") }
let host = options["host"] ?? "127.0.0.1"
guard let port = Int(options["port"] ?? "") else { die("--port is required") }
if mode == "server" {
    runServer(host: host, port: port)
} else {
    guard let req = Int(options["req"] ?? ""), let resp = Int(options["resp"] ?? ""), req >= 8, resp >= 1,
          req <= maxMessage, resp <= maxMessage else { die("--req (≥ 8) and --resp (≥ 1) bytes are required, at most \(maxMessage)") }
    runClient(host: host, port: port, request: req, response: resp, depth: max(1, Int(options["qd"] ?? "1") ?? 1),
              seconds: Double(options["time"] ?? "10") ?? 10, warmup: Double(options["warmup"] ?? "1") ?? 1)
}
