#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Logging
import Nexus
import NVMeTarget
import Store

/// A nexus as the API reports it: the nexus's snapshot plus what the engine adds (publication,
/// URI, which children are local, host I/O counters).
struct NexusView: Sendable {
    var snapshot: NexusSnapshot
    var request: NexusCreateRequest
    var publication: NexusEntry.Publication?
    /// `nvmf://HOST:PORT/NQN` while published, else empty.
    var uri: String
    var localChildren: Set<String>
    var stats: ReplicaIOStats
}

/// A health record as read from the store.
struct HealthRecordView: Sendable {
    var key: String
    var volume: UUID
    var nexus: UUID
    var record: NexusHealthRecord
    var modRevision: Int64
}

/// The child operations of the API.
enum NexusChildOperation: String, Sendable {
    case add, remove, offline, online, fault
}

/// Nexuses on this engine (docs/notes/nexus-plan.md): created over children opened by
/// ``EngineChildConnector``, health records in the engine's store, rebuild logs under
/// `<state-dir>/rebuild-logs`, published as the volume's subsystem on the engine's target with an
/// ANA frontend. Table changes (create, publish, unpublish, shutdown, destroy) run one at a time
/// through the engine's nexus serializer — not the pool one, so a create waiting for a remote
/// child's connect timeout never holds up pool and replica calls; child operations are
/// serialized by the nexus itself.
extension EngineCore {
    /// Where the nexuses' missed-segment logs live: `<dir>/<volume>/<child>.seglog`.
    var rebuildLogDirectory: String { configuration.stateDirectory + "/rebuild-logs" }

    /// The engine's NVMe/TCP listeners as the target's control calls name them (bound port).
    var listenerAddresses: [ListenerAddress] {
        [ListenerAddress(host: configuration.nvmfHost, port: boundPort.load(ordering: .relaxed))]
    }

    var childConnector: EngineChildConnector {
        EngineChildConnector(target: shares.target, configuration: configuration,
                             port: { [weak self] in self?.boundPort.load(ordering: .relaxed) ?? 0 }, logger: logger)
    }

    /// `nvmf://HOST:PORT/NQN` on this engine.
    func nvmfURI(_ nqn: String) -> String {
        let host = configuration.uriHost
        return "nvmf://\(host.contains(":") ? "[\(host)]" : host):\(boundPort.load(ordering: .relaxed))/\(nqn)"
    }

    private func runNexusChange<T: Sendable>(_ body: () async throws(IOEngineError) -> T) async throws(IOEngineError) -> T {
        do {
            return try await nexusSerializer.run { () async throws -> T in try await body() }
        } catch let error as IOEngineError {
            throw error
        } catch {
            throw .internal("\(error)")
        }
    }

    private func nexusCall<T>(_ body: () async throws(NexusError) -> T) async throws(IOEngineError) -> T {
        do {
            return try await body()
        } catch {
            throw IOEngineError(error)
        }
    }

    func entry(_ text: String) throws(IOEngineError) -> NexusEntry {
        let uuid = try NexusValidation.uuid(text)
        guard let entry = nexuses[uuid] else {
            let known = nexuses.all.map { $0.nexus.uuid.lowercased }
            throw .notFound("nexus \(uuid.lowercased) not found (nexuses: \(known.isEmpty ? "none" : known.joined(separator: ", ")))")
        }
        return entry
    }

    func view(_ entry: NexusEntry) -> NexusView {
        let snapshot = entry.nexus.snapshot
        let publication = entry.publication
        let connector = childConnector
        let local = Set(snapshot.children.map(\.uri).filter { connector.localNamespace(uri: $0) != nil })
        return NexusView(snapshot: snapshot, request: entry.request, publication: publication,
                         uri: publication == nil ? "" : nvmfURI(snapshot.nqn), localChildren: local, stats: entry.stats)
    }

    // MARK: Create, destroy, shutdown

    func createNexus(_ request: NexusCreateRequest) async throws(IOEngineError) -> NexusView {
        try await runNexusChange { () async throws(IOEngineError) -> NexusView in
            let id = request.uuid.lowercased
            if let existing = nexuses[request.uuid] {
                guard existing.request.sameNexus(as: request) else {
                    throw .alreadyExists("nexus \(id) already exists with other parameters: "
                        + existing.request.differences(from: request).joined(separator: "; "))
                }
                if request.publish {
                    if let publication = existing.publication, publication.allowedHosts.sorted() != request.allowedHosts.sorted() {
                        throw .alreadyExists("nexus \(id) is already published to other hosts: "
                            + "\(publication.allowedHosts.isEmpty ? "any" : publication.allowedHosts.joined(separator: ","))")
                    }
                    if existing.publication == nil { try await publishLocked(existing, hosts: request.allowedHosts) }
                }
                return view(existing)
            }
            if let other = nexuses.entry(volume: request.volumeUUID) {
                throw .alreadyExists("volume \(request.volumeUUID.lowercased) already has nexus \(other.nexus.uuid.lowercased) on this node")
            }
            guard let store = store else { throw .unavailable("nexus \(id): the io-engine has no store for the health record") }
            let configuration = request.configuration(rebuildLogDirectory: rebuildLogDirectory, limits: rebuildDefaults.withLock { $0 })
            let connector = childConnector
            let recorder = StoreHealthRecorder(store: store, volume: request.volumeUUID, nexus: request.uuid)
            let logger = self.logger
            let nexus = try await nexusCall { () async throws(NexusError) -> Nexus in
                try await Nexus.create(configuration, connector: connector, health: recorder, logger: logger)
            }
            let entry = NexusEntry(nexus: nexus, request: request)
            nexuses.insert(entry)
            if request.publish {
                do throws(IOEngineError) {
                    try await publishLocked(entry, hosts: request.allowedHosts)
                } catch {
                    await nexus.destroy()
                    nexuses.remove(request.uuid)
                    throw error
                }
            }
            let made = view(entry)
            self.logger.info("nexus created", metadata: [
                "nexus": "\(id)", "volume": "\(request.volumeUUID.lowercased)", "state": "\(made.snapshot.state.rawValue)",
                "children": "\(made.snapshot.children.map { "\($0.uri)=\($0.state)\(made.localChildren.contains($0.uri) ? "(local)" : "")" })",
                "published": "\(made.uri.isEmpty ? "no" : made.uri)",
            ])
            return made
        }
    }

    /// Shuts the nexus down, unpublishes it and forgets it.
    func destroyNexus(uuid text: String) async throws(IOEngineError) {
        let uuid = try NexusValidation.uuid(text)
        try await runNexusChange { () async throws(IOEngineError) in
            let entry = try entry(text)
            await entry.nexus.destroy()
            await unpublishLocked(entry)
            nexuses.remove(uuid)
            logger.info("nexus destroyed", metadata: ["nexus": "\(uuid.lowercased)"])
        }
    }

    func shutdownNexus(uuid text: String) async throws(IOEngineError) -> NexusView {
        try await runNexusChange { () async throws(IOEngineError) -> NexusView in
            let entry = try entry(text)
            await entry.nexus.shutdown(reason: .requested)
            return view(entry)
        }
    }

    /// Engine stop: every nexus is shut down (clean shutdown recorded) and unpublished before the
    /// replicas under them stop being served.
    func shutDownNexuses() async {
        _ = try? await runNexusChange { () async throws(IOEngineError) in
            for entry in nexuses.all {
                await entry.nexus.shutdown(reason: .requested)
                await unpublishLocked(entry)
                nexuses.remove(entry.nexus.uuid)
                logger.info("nexus shut down (engine stopping)", metadata: ["nexus": "\(entry.nexus.uuid.lowercased)"])
            }
        }
    }

    // MARK: Publish

    func publishNexus(uuid text: String, allowedHosts: [String]) async throws(IOEngineError) -> NexusView {
        let uuid = try NexusValidation.uuid(text)
        let hosts = try NexusValidation.hosts(allowedHosts, nexus: uuid)
        return try await runNexusChange { () async throws(IOEngineError) -> NexusView in
            let entry = try entry(text)
            try await publishLocked(entry, hosts: hosts)
            return view(entry)
        }
    }

    func unpublishNexus(uuid text: String) async throws(IOEngineError) -> NexusView {
        try await runNexusChange { () async throws(IOEngineError) -> NexusView in
            let entry = try entry(text)
            await unpublishLocked(entry)
            return view(entry)
        }
    }

    /// Adds the volume's subsystem (namespace 1 = the nexus device, metered; identity derived from
    /// NQN and namespace ID, so the same on every node; the nexus's controller-ID range; in-memory
    /// reservations) and attaches the ANA frontend. Published already: replaces the allowed hosts.
    private func publishLocked(_ entry: NexusEntry, hosts: [String]) async throws(IOEngineError) {
        let nexus = entry.nexus
        let id = nexus.uuid.lowercased
        let nqn = nexus.identity.volumeNQN
        let target = shares.target
        let allowed: Set<String>? = hosts.isEmpty ? nil : Set(hosts)
        if entry.publication != nil {
            do {
                let update = try await target.updateHostAccess(subsystemNQN: nqn, .replace(allowed: allowed, denied: []))
                if !update.disconnected.isEmpty {
                    logger.notice("nexus allowed hosts replaced; hosts that lost access disconnected",
                                  metadata: ["nexus": "\(id)", "disconnected": "\(update.disconnected.map(\.hostNQN))"])
                }
            } catch {
                throw .invalidArgument("nexus \(id) allowed hosts \(hosts): \(error)")
            }
            entry.setPublication(.init(allowedHosts: hosts))
            return
        }
        switch nexus.state {
        case .shuttingDown, .shutdown:
            throw .failedPrecondition("nexus \(id) is \(nexus.state.rawValue): it cannot be published (destroy it and create a new one)")
        default:
            break
        }
        guard target.subsystems[nqn] == nil else {
            throw .failedPrecondition("nexus \(id): subsystem \(nqn) is already served by this io-engine")
        }
        let namespace = NamespaceConfiguration(
            namespaceID: 1, device: MeteredBlockDevice(wrapping: nexus.device, stats: entry.stats),
            identity: .derived(subsystemNQN: nqn, namespaceID: 1), anaGroupID: 1)
        let configuration = SubsystemConfiguration(nqn: nqn, controllerIDRange: entry.request.controllerIDRange,
                                                   allowedHosts: allowed, namespaces: [namespace])
        do {
            try target.addSubsystem(configuration)
        } catch {
            throw .internal("publishing nexus \(id) as \(nqn): \(error)")
        }
        entry.setPublication(.init(allowedHosts: hosts))
        let listeners: @Sendable () -> [ListenerAddress] = { [weak self] in self?.listenerAddresses ?? [] }
        await nexus.attach(frontend: NexusANAFrontend(target: target, subsystemNQN: nqn, listeners: listeners, logger: logger))
        logger.info("nexus published", metadata: [
            "nexus": "\(id)", "subnqn": "\(nqn)", "uri": "\(nvmfURI(nqn))",
            "allowedHosts": "\(hosts.isEmpty ? "any" : hosts.joined(separator: ","))",
        ])
    }

    /// Detaches the frontend and removes the subsystem (connected hosts are disconnected before
    /// this returns). Not published: nothing happens.
    private func unpublishLocked(_ entry: NexusEntry) async {
        guard entry.publication != nil else { return }
        let nqn = entry.nexus.identity.volumeNQN
        await entry.nexus.attach(frontend: nil)
        let disconnected = (try? await shares.target.removeSubsystem(nqn: nqn)) ?? 0
        entry.setPublication(nil)
        logger.info("nexus unpublished", metadata: ["nexus": "\(entry.nexus.uuid.lowercased)", "subnqn": "\(nqn)",
                                                    "disconnected": "\(disconnected)"])
    }

    // MARK: Reads

    func nexusViews() -> [NexusView] { nexuses.all.map(view) }

    func nexusView(uuid text: String) throws(IOEngineError) -> NexusView { view(try entry(text)) }

    // MARK: Children

    func changeChild(_ operation: NexusChildOperation, nexus text: String, uri: String) async throws(IOEngineError) -> NexusView {
        let entry = try entry(text)
        let nexus = entry.nexus
        guard !uri.isEmpty else { throw .invalidArgument("nexus \(nexus.uuid.lowercased): child URI is empty") }
        try NexusValidation.childURI(uri, nexus: nexus.uuid)
        try await nexusCall { () async throws(NexusError) in
            switch operation {
            case .add: try await nexus.addChild(uri: uri)
            case .remove: try await nexus.removeChild(uri: uri)
            case .offline: try await nexus.offlineChild(uri: uri)
            case .online: try await nexus.onlineChild(uri: uri)
            case .fault: try await nexus.faultChild(uri: uri)
            }
        }
        logger.info("nexus child \(operation.rawValue)", metadata: ["nexus": "\(nexus.uuid.lowercased)", "child": "\(uri)"])
        return view(entry)
    }

    // MARK: Rebuilds

    func rebuilds(nexus text: String) throws(IOEngineError) -> [RebuildProgress] {
        let entry = try entry(text)
        _ = entry.finishedRebuilds()
        return entry.nexus.rebuildProgress.sorted { $0.destination < $1.destination }
    }

    func rebuildHistory(nexus text: String) throws(IOEngineError) -> [RebuildProgress] {
        let entry = try entry(text)
        _ = entry.finishedRebuilds()
        return entry.nexus.rebuildHistory
    }

    /// The limits of one nexus, or the engine's defaults (`text` empty).
    func rebuildLimits(nexus text: String) throws(IOEngineError) -> RebuildLimits {
        text.isEmpty ? rebuildDefaults.withLock { $0 } : try entry(text).nexus.rebuildLimits
    }

    /// Changes the given values: of one nexus, or (`text` empty) the engine's defaults and the
    /// concurrency and rate of every nexus (each keeps the segment size it was created with).
    func setRebuildLimits(nexus text: String, concurrency: Int?, bytesPerSecond: UInt64??, segmentBytes: Int?) throws(IOEngineError)
        -> RebuildLimits
    {
        func merged(_ base: RebuildLimits) throws(IOEngineError) -> RebuildLimits {
            do {
                return try RebuildLimits(segmentBytes: segmentBytes ?? base.segmentBytes, concurrency: concurrency ?? base.concurrency,
                                         bytesPerSecond: bytesPerSecond ?? base.bytesPerSecond)
            } catch {
                throw .invalidArgument(error.description)
            }
        }
        if !text.isEmpty {
            let nexus = try entry(text).nexus
            let new = try merged(nexus.rebuildLimits)
            do {
                try nexus.setRebuildLimits(new)
            } catch {
                throw IOEngineError(error)
            }
            logger.info("nexus rebuild limits set", metadata: ["nexus": "\(nexus.uuid.lowercased)", "limits": "\(new)"])
            return new
        }
        let new = try merged(rebuildDefaults.withLock { $0 })
        rebuildDefaults.withLock { $0 = new }
        for entry in nexuses.all {
            let nexus = entry.nexus
            do {
                try nexus.setRebuildLimits(try RebuildLimits(segmentBytes: nexus.rebuildLimits.segmentBytes,
                                                             concurrency: new.concurrency, bytesPerSecond: new.bytesPerSecond))
            } catch {
                logger.warning("rebuild limits not applied to a nexus", metadata: ["nexus": "\(nexus.uuid.lowercased)", "error": "\(error)"])
            }
        }
        logger.info("rebuild limits set (defaults and every nexus)", metadata: ["limits": "\(new)"])
        return new
    }

    // MARK: Health record

    /// The nexus's health record as the store holds it. The volume is the nexus's own when it runs
    /// here, else `volumeText`, else found by a search of the volumes' keys.
    func healthRecord(nexus text: String, volume volumeText: String) async throws(IOEngineError) -> HealthRecordView {
        let uuid = try NexusValidation.uuid(text)
        guard let store = store else { throw .unavailable("the io-engine has no store") }
        var volume: UUID? = nexuses[uuid]?.request.volumeUUID
        if volume == nil && !volumeText.isEmpty {
            guard let parsed = UUID(uuidString: volumeText) else { throw .invalidArgument("volume uuid '\(volumeText)' is not a UUID") }
            volume = parsed
        }
        let found: KeyValue?
        do {
            if let volume {
                found = try await store.get(NexusHealthRecord.key(volume: volume, nexus: uuid))
            } else {
                let suffix = "/nexus/\(uuid.lowercased)/health"
                found = try await store.list(prefix: "/halyard/v1/volumes/").kvs.first { $0.key.hasSuffix(suffix) }
            }
        } catch {
            throw .unavailable("reading the health record of nexus \(uuid.lowercased) from the store: \(error)")
        }
        guard let found else {
            throw .notFound("no health record of nexus \(uuid.lowercased) in the store"
                + (volume.map { " (key \(NexusHealthRecord.key(volume: $0, nexus: uuid)))" } ?? ""))
        }
        let record: NexusHealthRecord
        do {
            record = try NexusHealthRecord.decode(found.value)
        } catch {
            throw .internal("health record \(found.key) is not valid JSON: \(error)")
        }
        let keyVolume = volume ?? found.key.split(separator: "/").dropFirst(3).first.flatMap { UUID(uuidString: String($0)) } ?? UUID.nilUUID
        return HealthRecordView(key: found.key, volume: keyVolume, nexus: uuid, record: record, modRevision: found.modRevision)
    }
}
