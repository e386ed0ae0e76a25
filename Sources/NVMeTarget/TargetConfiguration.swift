import NIOCore
import NVMe
import Storage

/// A namespace a subsystem exports: a block device under a namespace ID, with its stable identity.
public struct NamespaceConfiguration: Sendable {
    public var namespaceID: UInt32
    public var device: any BlockDevice
    /// NGUID/UUID; by default derived from the subsystem NQN and namespace ID.
    public var identity: NamespaceIdentity?
    /// ANA group (1...16) the namespace belongs to (Identify Namespace ANAGRPID); group 1 unless set.
    public var anaGroupID: UInt32
    /// Where reservation state is kept for Persist Through Power Loss: by default beside a file
    /// namespace's backing file (`<file>.reservations.json`), in memory for other devices.
    public var reservationState: ReservationStateLocation

    public init(namespaceID: UInt32 = 1, device: any BlockDevice, identity: NamespaceIdentity? = nil, anaGroupID: UInt32 = 1,
                reservationState: ReservationStateLocation = .automatic) {
        self.namespaceID = namespaceID
        self.device = device
        self.identity = identity
        self.anaGroupID = anaGroupID
        self.reservationState = reservationState
    }
}

/// An NVM subsystem as configured: NQN, controller identity strings, the controller-ID range this
/// node may hand out, which hosts may connect, and its namespaces (NVMe base spec 2.0 §2.4).
public struct SubsystemConfiguration: Sendable {
    public var nqn: String
    /// Serial number reported by every controller; by default derived from the NQN, so it is the
    /// same on every node serving this NQN.
    public var serialNumber: String?
    public var modelNumber: String
    /// Controller IDs this node allocates for the subsystem. Nodes serving the same NQN must use
    /// disjoint ranges (the Linux host rejects duplicate controller IDs).
    public var controllerIDRange: ClosedRange<UInt16>
    /// Host NQNs allowed to connect; nil allows any host.
    public var allowedHosts: Set<String>?
    /// Host NQNs never allowed to connect (deny wins over allow).
    public var deniedHosts: Set<String> = []
    public var namespaces: [NamespaceConfiguration]

    public init(nqn: String, serialNumber: String? = nil, modelNumber: String = "Halyard NVMe/TCP",
                controllerIDRange: ClosedRange<UInt16> = 1...0xFFEF, allowedHosts: Set<String>? = nil,
                namespaces: [NamespaceConfiguration]) {
        self.nqn = nqn
        self.serialNumber = serialNumber
        self.modelNumber = modelNumber
        self.controllerIDRange = controllerIDRange
        self.allowedHosts = allowedHosts
        self.namespaces = namespaces
    }
}

/// A TCP listener: where it binds, and the address hosts are told in discovery log entries.
public struct ListenerConfiguration: Hashable, Sendable {
    public var host: String
    public var port: Int
    /// Address advertised in discovery log entries (TRADDR); defaults to `host`. The port is
    /// always the listener's own.
    public var advertisedHost: String?

    public init(host: String, port: Int, advertisedHost: String? = nil) {
        self.host = host
        self.port = port
        self.advertisedHost = advertisedHost
    }
}

/// Everything an `NVMeTCPTarget` serves.
public struct TargetConfiguration: Sendable {
    public var listeners: [ListenerConfiguration]
    /// Discovery controller listener (port 8009 by convention); nil for none.
    public var discoveryListener: ListenerConfiguration?
    public var subsystems: [SubsystemConfiguration]
    public var limits: TargetLimits

    public init(listeners: [ListenerConfiguration], discoveryListener: ListenerConfiguration? = nil,
                subsystems: [SubsystemConfiguration], limits: TargetLimits = TargetLimits()) {
        self.listeners = listeners
        self.discoveryListener = discoveryListener
        self.subsystems = subsystems
        self.limits = limits
    }
}

/// Transport and queue limits the target advertises (Identify Controller, ICResp, CAP).
public struct TargetLimits: Hashable, Sendable {
    /// Entries per queue (CAP.MQES + 1); the Linux host asks for 128 by default.
    public var maxQueueEntries: Int = 1024
    /// I/O queues granted at most per controller.
    public var maxIOQueues: Int = 64
    /// MDTS as a power of two of 4 KiB pages: 8 → 1 MiB per command.
    public var maxDataTransferShift: UInt8 = 8
    /// MAXH2CDATA in ICResp.
    public var maxH2CData: UInt32 = 128 * 1024
    /// IOCCSZ in 16-byte units: in-capsule data on I/O queues is up to IOCCSZ×16−64 bytes.
    public var ioCommandCapsuleSize: UInt32 = 1028
    /// In-capsule data accepted on the admin queue and for fabrics commands.
    public var adminInCapsuleDataSize: Int = 8192
    /// Extra time past KATO before a silent controller is torn down.
    public var keepAliveGrace: TimeAmount = .seconds(2)
    /// KATO used when a discovery host asks for 0.
    public var discoveryKeepAliveDefault: TimeAmount = .seconds(120)

    public init() {}

    public var maxDataTransferSize: Int { 4096 << Int(maxDataTransferShift) }
    public var ioInCapsuleDataSize: Int { Int(ioCommandCapsuleSize) * 16 - 64 }
    /// The largest PDU a connection accepts: an H2CData chunk or a capsule, with digests.
    public var maximumPDULength: Int {
        max(Int(maxH2CData) + 24, ioInCapsuleDataSize + 72, adminInCapsuleDataSize + 72) + 8
    }
}
