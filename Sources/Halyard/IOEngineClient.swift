import ArgumentParser
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2Posix
import IOEngineAPI

/// `--io-engine HOST:PORT` and `--json`, shared by `halyard pool …` and `halyard replica …`.
struct IOEngineClientOptions: ParsableArguments {
    @Option(name: .customLong("io-engine"),
            help: ArgumentHelp("The io-engine's gRPC endpoint (default: $HALYARD_IO_ENGINE, else 127.0.0.1:10124).", valueName: "HOST:PORT"))
    var ioEngine: String?

    @Flag(help: "Print the answer as JSON instead of a table.")
    var json = false

    var endpoint: String { ioEngine ?? ProcessInfo.processInfo.environment["HALYARD_IO_ENGINE"] ?? "127.0.0.1:10124" }

    func validate() throws { _ = try AddressParser.parse(endpoint) }
}

/// One gRPC connection to an io-engine for the length of a CLI command. An `RPCError` from the
/// io-engine is printed as `error: <code>: <message>` on stderr and exits with status 1; an
/// unreachable io-engine the same way (code `unavailable`).
enum IOEngineClient {
    typealias Transport = HTTP2ClientTransport.Posix

    static func call<T: Sendable>(
        _ options: IOEngineClientOptions, _ body: @Sendable (GRPCClient<Transport>) async throws -> T
    ) async throws -> T {
        let (host, port) = try AddressParser.parse(options.endpoint)
        let target: any ResolvableTarget = host.allSatisfy { $0.isNumber || $0 == "." } ? .ipv4(address: host, port: port) : .dns(host: host, port: port)
        do {
            return try await withGRPCClient(transport: try .http2NIOPosix(target: target, transportSecurity: .plaintext)) { client in
                try await body(client)
            }
        } catch let error as RPCError {
            let message = error.code == .unavailable && error.message.isEmpty ? "io-engine at \(options.endpoint) unreachable" : error.message
            FileHandle.standardError.write(Data("error: \(codeName(error.code)): \(message)\n".utf8))
            throw ExitCode.failure
        }
    }

    /// Call options of every CLI request: a deadline, so a hung io-engine cannot hang the CLI.
    static var callOptions: CallOptions {
        var options = CallOptions.defaults
        options.timeout = .seconds(60)
        return options
    }

    /// gRPC code names as the docs spell them (lowerCamelCase, like grpc-swift).
    static func codeName(_ code: RPCError.Code) -> String {
        switch code {
        case .cancelled: "cancelled"
        case .unknown: "unknown"
        case .invalidArgument: "invalidArgument"
        case .deadlineExceeded: "deadlineExceeded"
        case .notFound: "notFound"
        case .alreadyExists: "alreadyExists"
        case .permissionDenied: "permissionDenied"
        case .resourceExhausted: "resourceExhausted"
        case .failedPrecondition: "failedPrecondition"
        case .aborted: "aborted"
        case .outOfRange: "outOfRange"
        case .unimplemented: "unimplemented"
        case .internalError: "internal"
        case .unavailable: "unavailable"
        case .dataLoss: "dataLoss"
        case .unauthenticated: "unauthenticated"
        default: "\(code)"
        }
    }
}

/// Column-aligned text tables for the CLI's default output.
enum TableOutput {
    static func print(headers: [String], rows: [[String]]) {
        var widths = headers.map(\.count)
        for row in rows {
            for (index, cell) in row.enumerated() where index < widths.count { widths[index] = max(widths[index], cell.count) }
        }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { index, cell in
                index == cells.count - 1 ? cell : cell.padding(toLength: widths[index], withPad: " ", startingAt: 0)
            }.joined(separator: "  ")
        }
        Swift.print(line(headers))
        for row in rows { Swift.print(line(row)) }
    }

    /// Prints `value` as pretty JSON (sorted keys).
    static func printJSON(_ value: some Encodable) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        Swift.print(String(decoding: try encoder.encode(value), as: UTF8.self))
    }

    /// 1073741824 → "1.0 GiB".
    static func bytes(_ value: UInt64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"]
        var v = Double(value)
        var unit = 0
        while v >= 1024 && unit < units.count - 1 { v /= 1024; unit += 1 }
        return unit == 0 ? "\(value) B" : String(format: "%.1f %@", v, units[unit])
    }
}
