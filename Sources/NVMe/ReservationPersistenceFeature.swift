/// Reservation Persistence feature, FID 83h (NVMe base spec 2.0 §5.27.1.27, Figure 363): Set
/// Features CDW11 and Get Features DW0 hold PTPL in b0. Namespace specific (NSID selects it).
public struct ReservationPersistenceFeature: Hashable, Sendable {
    /// Persist Through Power Loss.
    public var persistThroughPowerLoss: Bool

    public init(persistThroughPowerLoss: Bool) {
        self.persistThroughPowerLoss = persistThroughPowerLoss
    }

    public init(dword: UInt32) { persistThroughPowerLoss = dword & 1 != 0 }

    public var dword: UInt32 { persistThroughPowerLoss ? 1 : 0 }
}
