#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// `<stateDirectory>/pools.json`: the name and disk of every pool the engine has imported or
/// created, so a restart imports pools created at runtime again. Written as temp file → fsync →
/// rename → fsync of the directory: a reader sees the old list or the new one, whole.
///
/// ```json
/// {"version":1,"pools":[{"name":"pool-a","disk":"/var/lib/halyard/a.img"}]}
/// ```
///
/// The methods block on file I/O: call them off event loops and the cooperative pool.
struct PoolRegistry: Sendable {
    /// One pool: its name (as last seen) and its backing file or block device.
    struct Entry: Codable, Hashable, Sendable {
        var name: String
        var disk: String
    }

    private struct File: Codable {
        var version: Int
        var pools: [Entry]
    }

    static let version = 1
    let directory: String
    let path: String

    init(stateDirectory: String) {
        directory = stateDirectory
        path = stateDirectory + "/pools.json"
    }

    /// The recorded pools; empty when the file does not exist.
    func load() throws(IOEngineError) -> [Entry] {
        guard FileManager.default.fileExists(atPath: path) else { return [] }
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw .internal("pool registry \(path): cannot read: \(error)")
        }
        let file: File
        do {
            file = try JSONDecoder().decode(File.self, from: data)
        } catch {
            throw .internal("pool registry \(path): not valid JSON (\(data.count) bytes): \(error)")
        }
        guard file.version == Self.version else {
            throw .internal("pool registry \(path): unsupported version \(file.version) (this build reads \(Self.version))")
        }
        return file.pools
    }

    /// Replaces the recorded pools, durably.
    func save(_ entries: [Entry]) throws(IOEngineError) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let bytes: [UInt8]
        do {
            bytes = Array(try encoder.encode(File(version: Self.version, pools: entries)))
        } catch {
            throw .internal("pool registry \(path): cannot encode: \(error)")
        }
        let temporary = path + ".tmp"
        func failure(_ what: String) -> IOEngineError {
            .internal("pool registry \(path): \(what): \(String(cString: strerror(errno)))")
        }
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw failure("cannot create \(temporary)") }
        var written = 0
        while written < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + written, $0.count - written) }
            if n < 0 {
                if errno == EINTR { continue }
                let error = failure("cannot write \(temporary)")
                close(fd)
                throw error
            }
            written += n
        }
        guard fsync(fd) == 0 else {
            let error = failure("cannot fsync \(temporary)")
            close(fd)
            throw error
        }
        close(fd)
        guard rename(temporary, path) == 0 else { throw failure("cannot rename \(temporary)") }
        let dfd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard dfd >= 0 else { throw failure("cannot open directory \(directory)") }
        defer { close(dfd) }
        guard fsync(dfd) == 0 else { throw failure("cannot fsync directory \(directory)") }
    }
}
