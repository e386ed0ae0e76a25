import Foundation

/// The `halyard nvmf-target --config FILE` format (JSON), for several subsystems or namespaces:
///
/// ```json
/// {
///   "listen": ["127.0.0.1:4420"],
///   "discovery": "127.0.0.1:8009",
///   "advertise": "10.0.2.2",
///   "subsystems": [
///     { "nqn": "nqn.2026-11.io.halyard:vol1",
///       "allowHosts": ["nqn.2014-08.org.nvmexpress:uuid:..."], "denyHosts": [],
///       "controllerIDs": "1-1000", "serial": "optional", "model": "optional",
///       "namespaces": [
///         { "nsid": 1, "memory": "64MiB", "blockSize": 512, "anaGroup": 1 },
///         { "nsid": 2, "file": "vol1.img", "size": "1GiB", "blockSize": 4096 } ] } ]
/// }
/// ```
struct TargetConfigFile: Decodable {
    struct Namespace: Decodable {
        var nsid: UInt32?
        var memory: String?
        var file: String?
        var size: String?
        var blockSize: Int?
        /// ANA group 1-16 (default 1).
        var anaGroup: UInt32?
    }

    struct Subsystem: Decodable {
        var nqn: String
        var allowHosts: [String]?
        var denyHosts: [String]?
        var controllerIDs: String?
        var serial: String?
        var model: String?
        var namespaces: [Namespace]
    }

    var listen: [String]
    var discovery: String?
    var advertise: String?
    var subsystems: [Subsystem]

    static func load(path: String) throws -> TargetConfigFile {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw ConfigError("cannot read config file \(path): \(error.localizedDescription)")
        }
        do {
            return try JSONDecoder().decode(TargetConfigFile.self, from: data)
        } catch let DecodingError.keyNotFound(key, context) {
            throw ConfigError("\(path): missing \"\(key.stringValue)\" at \(context.codingPath.map(\.stringValue).joined(separator: "."))")
        } catch let DecodingError.typeMismatch(_, context), let DecodingError.valueNotFound(_, context) {
            throw ConfigError("\(path): wrong type at \(context.codingPath.map(\.stringValue).joined(separator: ".")): \(context.debugDescription)")
        } catch {
            throw ConfigError("\(path): not valid JSON: \(error)")
        }
    }
}

/// A configuration error with a message for the operator.
struct ConfigError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
