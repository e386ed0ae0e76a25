import Foundation
import NIOCore
import NIOHTTP1
import NVMe
import NVMeTarget

/// The endpoints of `halyard nvmf-target --control` (HTTP/1.1, JSON bodies; README "Control
/// interface"), independent of the transport:
///
/// | method | path | body | answer |
/// |---|---|---|---|
/// | GET | /v1/stats | — | `TargetStatistics` |
/// | POST | /v1/ana | `{"nqn", "listener", "state", "group"?}` | `ANAStateChange` |
/// | POST | /v1/hosts | `{"nqn", "action", "host"?}` (allow, deny, remove-allow, remove-deny, allow-any) | `HostAccessUpdate` |
/// | PUT | /v1/hosts | `{"nqn", "allowHosts": [..] or null, "denyHosts"?: [..]}` | `HostAccessUpdate` |
///
/// Errors are `{"error": "message"}` with 400 (malformed request), 404 (unknown path, NQN,
/// listener or ANA group), 405 (method), 409 (the change conflicts with the current lists) or
/// 413 (body over 64 KiB).
struct ControlAPI: Sendable {
    let target: NVMeTCPTarget

    static let maximumBodySize = 64 << 10

    struct Response: Sendable {
        var status: HTTPResponseStatus
        var body: Data

        static func json(_ value: some Encodable, status: HTTPResponseStatus = .ok) -> Response {
            do {
                return Response(status: status, body: try ControlJSON.encoder.encode(value) + Data("\n".utf8))
            } catch {
                return .error(.internalServerError, "cannot encode the answer: \(error)")
            }
        }

        static func error(_ status: HTTPResponseStatus, _ message: String) -> Response {
            json(ControlErrorBody(error: message), status: status)
        }
    }

    /// Answers one request.
    func handle(method: HTTPMethod, uri: String, body: ByteBuffer) async -> Response {
        let path = uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? uri
        switch (path, method) {
        case ("/v1/stats", .GET):
            return .json(target.statistics())
        case ("/v1/ana", .POST):
            return await setANA(body)
        case ("/v1/hosts", .POST):
            return await changeHosts(body)
        case ("/v1/hosts", .PUT):
            return await replaceHosts(body)
        case ("/v1/stats", _), ("/v1/ana", _), ("/v1/hosts", _):
            return .error(.methodNotAllowed, "\(method) is not allowed on \(path)")
        default:
            return .error(.notFound, "no endpoint \(path) (endpoints: GET /v1/stats, POST /v1/ana, POST /v1/hosts, PUT /v1/hosts)")
        }
    }

    // MARK: Endpoints

    struct ANARequest: Decodable {
        var nqn: String
        var listener: String
        var state: String
        var group: UInt32?
    }

    private func setANA(_ body: ByteBuffer) async -> Response {
        let request: ANARequest
        switch decode(ANARequest.self, body) {
        case .success(let r): request = r
        case .failure(let e): return e.response
        }
        guard let state = ANAState(name: request.state) else {
            return .error(.badRequest, "unknown ANA state \"\(request.state)\" (optimized, non-optimized, inaccessible, persistent-loss, change)")
        }
        guard let listener = ListenerAddress(parsing: request.listener) else {
            return .error(.badRequest, "invalid listener \"\(request.listener)\": expected HOST:PORT")
        }
        do {
            let change = try await target.setANAState(subsystemNQN: request.nqn, listener: listener, group: request.group ?? 1, state: state)
            return .json(change)
        } catch {
            return Self.response(for: error)
        }
    }

    struct HostsRequest: Decodable {
        var nqn: String
        var action: String
        var host: String?
    }

    private func changeHosts(_ body: ByteBuffer) async -> Response {
        let request: HostsRequest
        switch decode(HostsRequest.self, body) {
        case .success(let r): request = r
        case .failure(let e): return e.response
        }
        let change: HostAccessChange
        switch (request.action, request.host) {
        case ("allow", let host?): change = .allow(host)
        case ("deny", let host?): change = .deny(host)
        case ("remove-allow", let host?): change = .removeAllowed(host)
        case ("remove-deny", let host?): change = .removeDenied(host)
        case ("allow-any", nil): change = .allowAnyHost
        case ("allow-any", _?): return .error(.badRequest, "action allow-any takes no \"host\"")
        case ("allow", nil), ("deny", nil), ("remove-allow", nil), ("remove-deny", nil):
            return .error(.badRequest, "action \(request.action) needs \"host\"")
        default:
            return .error(.badRequest, "unknown action \"\(request.action)\" (allow, deny, remove-allow, remove-deny, allow-any)")
        }
        return await apply(change, nqn: request.nqn)
    }

    /// `allowHosts` must be present (null = any host); `denyHosts` defaults to none.
    struct ReplaceHostsRequest: Decodable {
        var nqn: String
        var allowHosts: [String]?
        var denyHosts: [String]

        enum CodingKeys: String, CodingKey { case nqn, allowHosts, denyHosts }

        init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            nqn = try c.decode(String.self, forKey: .nqn)
            guard c.contains(.allowHosts) else {
                throw DecodingError.keyNotFound(CodingKeys.allowHosts, .init(codingPath: [], debugDescription: "allowHosts (null = any host) is required"))
            }
            allowHosts = try c.decodeIfPresent([String].self, forKey: .allowHosts)
            denyHosts = try c.decodeIfPresent([String].self, forKey: .denyHosts) ?? []
        }
    }

    private func replaceHosts(_ body: ByteBuffer) async -> Response {
        switch decode(ReplaceHostsRequest.self, body) {
        case .success(let r):
            return await apply(.replace(allowed: r.allowHosts.map(Set.init), denied: Set(r.denyHosts)), nqn: r.nqn)
        case .failure(let e):
            return e.response
        }
    }

    private func apply(_ change: HostAccessChange, nqn: String) async -> Response {
        do {
            return .json(try await target.updateHostAccess(subsystemNQN: nqn, change))
        } catch {
            return Self.response(for: error)
        }
    }

    // MARK: Helpers

    static func response(for error: TargetControlError) -> Response {
        switch error {
        case .unknownSubsystem, .unknownListener, .unknownANAGroup: .error(.notFound, error.description)
        case .invalidHostNQN, .invalidSubsystemNQN: .error(.badRequest, error.description)
        case .hostAccess, .subsystemExists: .error(.conflict, error.description)
        }
    }

    private func decode<T: Decodable>(_ type: T.Type, _ body: ByteBuffer) -> Result<T, ResponseError> {
        guard body.readableBytes > 0 else { return .failure(ResponseError(.error(.badRequest, "a JSON body is required"))) }
        do {
            return .success(try JSONDecoder().decode(T.self, from: Data(body.readableBytesView)))
        } catch let DecodingError.keyNotFound(key, _) {
            return .failure(ResponseError(.error(.badRequest, "missing \"\(key.stringValue)\"")))
        } catch let DecodingError.typeMismatch(_, context), let DecodingError.valueNotFound(_, context) {
            return .failure(ResponseError(.error(.badRequest, "wrong type for \"\(context.codingPath.map(\.stringValue).joined(separator: "."))\"")))
        } catch {
            return .failure(ResponseError(.error(.badRequest, "the body is not valid JSON")))
        }
    }

    /// A `Response` carried through `Result`.
    struct ResponseError: Error {
        var response: Response
        init(_ response: Response) { self.response = response }
    }
}

/// `{"error": "..."}`.
struct ControlErrorBody: Codable, Sendable {
    var error: String
}

/// The JSON style of the control interface: keys sorted, pretty-printed (readable with curl).
enum ControlJSON {
    static var encoder: JSONEncoder {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        return e
    }
}
