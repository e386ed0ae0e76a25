import NIOCore

/// What an ``IOEngine`` serves and where: the node's name, the NVMe/TCP listener for replica
/// shares, the state directory (`pools.json`) and the pools to import at start, plus the
/// endpoints `NodeService.GetNode` reports.
public struct IOEngineConfiguration: Sendable {
    /// The node's name (reported by `GetNode`).
    public var nodeName: String
    /// The address the NVMe/TCP listener for replica shares binds, e.g. `127.0.0.1`.
    public var nvmfHost: String
    /// The NVMe/TCP port; 0 binds any free port (``IOEngine/nvmfPort`` tells which).
    public var nvmfPort: Int
    /// The host replica URIs and discovery advertise; `nvmfHost` when nil.
    public var advertisedHost: String?
    /// Where `pools.json` (the disks of every imported pool) lives; created when missing.
    public var stateDirectory: String
    /// Disks to import at start besides those `pools.json` lists (recorded there once imported).
    public var importDisks: [String]
    /// The io-engine's version (reported).
    public var version: String
    /// The gRPC endpoint the daemon serves on (reported; the engine does not bind it).
    public var grpcEndpoint: String
    /// The `/metrics` endpoint (reported), if any.
    public var metricsEndpoint: String?
    /// The store the daemon uses, `etcd://127.0.0.1:2379` or `embedded` (reported).
    public var storeDescription: String
    /// Threads of each pool's own I/O thread pool.
    public var poolIOThreads: Int
    /// Added to every read and write of every replica this engine shares (a latency rule of a
    /// `FaultInjectingBlockDevice` around the replica): models media and a network slower than
    /// this machine's page cache, for benchmarks (`Benchmarks/nexus.sh --media-latency`). Zero
    /// (the default): nothing is added.
    public var emulatedMediaLatency: TimeAmount

    public init(nodeName: String, nvmfHost: String = "127.0.0.1", nvmfPort: Int = 4420, advertisedHost: String? = nil,
                stateDirectory: String, importDisks: [String] = [], version: String = "0.0.0-dev",
                grpcEndpoint: String = "127.0.0.1:10124", metricsEndpoint: String? = nil, storeDescription: String = "embedded",
                poolIOThreads: Int = 2, emulatedMediaLatency: TimeAmount = .zero)
    {
        self.emulatedMediaLatency = emulatedMediaLatency
        self.nodeName = nodeName
        self.nvmfHost = nvmfHost
        self.nvmfPort = nvmfPort
        self.advertisedHost = advertisedHost
        self.stateDirectory = stateDirectory
        self.importDisks = importDisks
        self.version = version
        self.grpcEndpoint = grpcEndpoint
        self.metricsEndpoint = metricsEndpoint
        self.storeDescription = storeDescription
        self.poolIOThreads = poolIOThreads
    }

    /// The host put in replica URIs: ``advertisedHost`` or ``nvmfHost``.
    public var uriHost: String { advertisedHost ?? nvmfHost }
}
