import NIOCore
import NVMe
import Storage

/// Executes admin commands for one controller (NVMe base spec 2.0 §5): Identify, Get Log Page,
/// Set/Get Features, Asynchronous Event Request, Keep Alive and Abort. A discovery controller
/// answers the subset NVMe over Fabrics spec 1.1 §5 allows. Runs on the admin queue's event loop.
struct AdminCommands {
    let controller: Controller
    let context: TargetContext

    var subsystem: Subsystem { controller.subsystem }
    var limits: TargetLimits { context.limits }

    /// Executes `sqe`; returns nil for an AER that was parked (its completion comes later).
    func execute(_ sqe: SubmissionQueueEntry, data: ByteBuffer) -> CommandOutcome? {
        guard let opcode = AdminOpcode(rawValue: sqe.opcode) else { return .failure(.invalidOpcode) }
        switch opcode {
        case .identify: return identify(sqe)
        case .getLogPage: return getLogPage(sqe)
        case .setFeatures where Self.isSetReservationPersistence(sqe) && !controller.isDiscovery:
            return setReservationPersistence(sqe)  // completes once durable (AdminCommands+Reservations.swift)
        case .setFeatures: return setFeatures(sqe)
        case .getFeatures: return getFeatures(sqe)
        case .asyncEventRequest:
            return controller.parkAsyncEventRequest(commandID: sqe.commandID) ? nil : .failure(.asyncEventRequestLimitExceeded)
        case .keepAlive:
            guard controller.keepAliveTimeout != nil else { return .failure(.keepAliveTimeoutInvalid) }
            controller.keepAliveReceived()
            controller.logger.trace("keep-alive received")
            return .success()
        case .abort:
            // Commands are not aborted; DW0 b0 = 1 says so (as the Linux target answers).
            return .success(dw0: 1)
        default:
            return .failure(.invalidOpcode)
        }
    }

    // MARK: Identify (§5.17)

    func identify(_ sqe: SubmissionQueueEntry) -> CommandOutcome {
        let fields = IdentifyCommandFields(cdw10: sqe.cdw10, cdw11: sqe.cdw11)
        var buffer = ByteBufferAllocator().buffer(capacity: 4096)
        if controller.isDiscovery && fields.structure != .controller { return .failure(.invalidField) }
        switch fields.structure {
        case .controller:
            identifyController().encode(into: &buffer)
        case .namespace:
            let nsid = sqe.namespaceID
            guard nsid != 0, nsid != 0xFFFF_FFFF else { return .failure(.invalidNamespace) }
            if let ns = subsystem.namespace(nsid) {
                identifyNamespace(ns).encode(into: &buffer)
            } else {
                // Inactive namespace ID: a zero-filled structure (NVMe base spec 2.0 §5.17.2.1).
                buffer.writeZeros(4096)
            }
        case .activeNamespaceList:
            guard sqe.namespaceID < 0xFFFF_FFFE else { return .failure(.invalidNamespace) }
            ActiveNamespaceList(activeNamespaceIDs: subsystem.namespaceIDs, startingAfter: sqe.namespaceID).encode(into: &buffer)
        case .namespaceIdentificationDescriptors:
            guard let ns = subsystem.namespace(sqe.namespaceID) else { return .failure(.invalidNamespace) }
            NamespaceIdentificationDescriptorList(descriptors: [.nguid(ns.identity.nguid), .uuid(ns.identity.uuid)])
                .encode(into: &buffer)
        default:
            return .failure(.invalidField)
        }
        return .success(data: buffer)
    }

    /// Identify Controller (NVMe base spec 2.0 Figure 275), with the values the Linux host needs
    /// (research/nvme-tcp.md §4.1).
    func identifyController() -> IdentifyController {
        let discovery = controller.isDiscovery
        var id = IdentifyController(
            serialNumber: subsystem.serialNumber, modelNumber: subsystem.modelNumber, firmwareRevision: HalyardVersion.firmwareRevision,
            rab: 6, cmic: discovery ? 0 : 0x0B, mdts: limits.maxDataTransferShift, cntlid: controller.id,
            version: Controller.version, oaes: controller.supportedAsyncEvents,
            ctratt: 0x1 /* 128-bit host identifier */, cntrltype: discovery ? 2 : 1,
            acl: 3, aerl: Controller.asyncEventRequestLimit, frmw: 0x3, lpa: 0x04 /* extended data for Get Log Page */,
            kas: 10 /* 100 ms units: 1 s */,
            maxcmd: UInt16(clamping: limits.maxQueueEntries),
            subnqn: subsystem.nqn)
        if !discovery {
            id.anatt = 10
            id.anacap = 0x1F  // optimized, non-optimized, inaccessible, persistent loss, change
            id.anagrpmax = ANAGroups.maximumGroupID
            id.nanagrpid = ANAGroups.maximumGroupID
            id.nn = ANAGroups.maximumNamespaceID
            id.mnan = ANAGroups.maximumNamespaceID
            id.oncs = 0x2C  // Dataset Management, Write Zeroes, Reservations
            // VWC b0 present; b2:1 = 11b: Flush with NSID FFFFFFFFh flushes every namespace.
            id.vwc = subsystem.hasVolatileWriteCache ? 0x07 : 0x06
            id.sgls = 0x0010_0001  // SGLs supported (no alignment), offsets for in-capsule data
            id.ioccsz = limits.ioCommandCapsuleSize
            id.iorcsz = 1
            id.icdoff = 0
            id.msdbd = 1
        } else {
            id.sgls = 0x0000_0001
            id.msdbd = 1
        }
        return id
    }

    /// Identify Namespace (NVM command set spec 1.0 Figure 97).
    func identifyNamespace(_ ns: Namespace) -> IdentifyNamespace {
        IdentifyNamespace(
            nsze: ns.blockCount, ncap: ns.blockCount, nuse: ns.blockCount,
            nmic: 0x01,  // may be attached to several controllers
            rescap: ns.reservations.capabilities.rawValue,
            dlfeat: 0x09,  // deallocated blocks read as zeroes; Write Zeroes may deallocate
            anagrpid: ns.anaGroupID,
            nguid: ns.identity.nguid,
            lbaFormats: [LBAFormat(lbaDataSizeShift: ns.blockSizeShift)])
    }

    // MARK: Get Log Page (§5.16)

    func getLogPage(_ sqe: SubmissionQueueEntry) -> CommandOutcome {
        let fields = GetLogPageCommandFields(cdw10: sqe.cdw10, cdw11: sqe.cdw11, cdw12: sqe.cdw12, cdw13: sqe.cdw13, cdw14: sqe.cdw14)
        guard fields.offset % 4 == 0 else { return .failure(.invalidField) }
        let length = fields.lengthInBytes
        // NUMD may ask for up to 16 GiB: the host's buffer (the SGL) and MDTS bound what we build.
        guard length <= limits.maxDataTransferSize else { return .failure(.invalidField) }
        guard length == Int(sqe.dataPointer.length) else { return .failure(.dataSGLLengthInvalid) }
        let page: ByteBuffer
        switch (fields.logPage, controller.isDiscovery) {
        case (.discovery, true):
            return .success(data: context.discoveryLogPage(hostNQN: controller.hostNQN).encodeRange(offset: fields.offset, length: length))
        case (.error, false):
            page = zeros(64)
        case (.smart, false):
            var b = ByteBufferAllocator().buffer(capacity: 512)
            SMARTLog(compositeTemperature: 313 /* 40 °C */, availableSpare: 100, availableSpareThreshold: 10).encode(into: &b)
            page = b
        case (.firmwareSlot, false):
            page = zeros(512)
        case (.reservationNotification, false):
            page = reservationNotificationLogPage()
        case (.changedNamespaces, false):
            var b = ByteBufferAllocator().buffer(capacity: 4096)
            ChangedNamespaceList().encode(into: &b)
            page = b
        case (.ana, false):
            let includeNSIDs = fields.logSpecificField & 0x1 == 0
            return .success(data: anaLogPage().encodeRange(offset: fields.offset, length: length, includeNamespaceIDs: includeNSIDs))
        case (.allocatedRanges, false):
            return allocatedRangesLogPage(namespaceID: sqe.namespaceID, offset: fields.offset, length: length)
        default:
            return .failure(.invalidField)
        }
        return .success(data: GetLogPageCommandFields.window(of: page, offset: fields.offset, length: length))
    }

    /// The ANA log page as seen through this controller's listener (NVMe base spec 2.0 §5.16.1.12).
    func anaLogPage() -> ANALogPage {
        subsystem.ana.logPage(listenerIndex: controller.listenerIndex)
    }

    /// Log page C0h, vendor specific (docs/notes/nexus-plan.md): the block ranges of the namespace
    /// NSID names that hold data, from a device that is ``AllocationReporting``; Invalid Log Page
    /// when the device cannot tell. Built per command, windowed by LPO and NUMD.
    func allocatedRangesLogPage(namespaceID: UInt32, offset: UInt64, length: Int) -> CommandOutcome {
        guard let ns = subsystem.namespace(namespaceID) else { return .failure(.invalidNamespace) }
        let ranges: [Range<UInt64>]?
        do {
            ranges = try ns.device.reportedAllocatedBlockRanges()
        } catch {
            return .failure(NVMeStatus(blockDeviceError: error))
        }
        guard let ranges else { return .failure(.invalidLogPage) }
        return .success(data: AllocatedRangesLogPage(ranges: ranges).encodeRange(offset: offset, length: length))
    }

    private func zeros(_ n: Int) -> ByteBuffer {
        var b = ByteBufferAllocator().buffer(capacity: n)
        b.writeZeros(n)
        return b
    }

    // MARK: Features (§5.27)

    func setFeatures(_ sqe: SubmissionQueueEntry) -> CommandOutcome {
        let fields = FeatureCommandFields(cdw10: sqe.cdw10)
        if fields.save { return .failure(.featureNotSaveable) }
        switch fields.feature {
        case .numberOfQueues where !controller.isDiscovery:
            let (granted, status) = controller.setNumberOfQueues(requested: sqe.cdw11)
            return CommandOutcome(status: status, dw0: granted)
        case .asyncEventConfiguration:
            return CommandOutcome(status: controller.setAsyncEventConfiguration(sqe.cdw11))
        case .keepAliveTimer:
            controller.setKeepAliveTimeout(milliseconds: sqe.cdw11)
            return .success()
        case .hostIdentifier where !controller.isDiscovery:
            // Over fabrics the host ID comes from Connect (NVMe over Fabrics spec 1.1 §3.3).
            return .failure(.commandSequenceError)
        default:
            return .failure(.invalidField)
        }
    }

    func getFeatures(_ sqe: SubmissionQueueEntry) -> CommandOutcome {
        let fields = FeatureCommandFields(cdw10: sqe.cdw10)
        switch fields.feature {
        case .numberOfQueues where !controller.isDiscovery:
            return .success(dw0: controller.numberOfQueues)
        case .asyncEventConfiguration:
            return .success(dw0: controller.asyncEventConfiguration)
        case .keepAliveTimer:
            let ms = controller.keepAliveTimeout.map { UInt32(clamping: $0.nanoseconds / 1_000_000) } ?? 0
            return .success(dw0: ms)
        case .volatileWriteCache where !controller.isDiscovery:
            return .success(dw0: subsystem.hasVolatileWriteCache ? 1 : 0)
        case .reservationPersistence where !controller.isDiscovery:
            return getReservationPersistence(sqe)
        case .hostIdentifier where !controller.isDiscovery:
            guard sqe.cdw11 & 1 == 1 else { return .failure(.invalidField) }  // EXHID: 128-bit only
            var b = ByteBufferAllocator().buffer(capacity: 16)
            b.writeBytes(controller.hostID)
            return .success(data: b)
        default:
            return .failure(.invalidField)
        }
    }
}

/// Version strings the target reports.
public enum HalyardVersion {
    public static let version = "0.1.0"
    /// Identify Controller FR (8 ASCII characters).
    public static let firmwareRevision = "0.1.0"
}
