import NVMe
import Testing

@Suite struct AdminFeaturesTests {
    @Test func asyncEventCompletionConstants() {
        #expect(AsyncEventCompletion.anaChange.dword == 0x000C_0302)
        #expect(AsyncEventCompletion.namespaceAttributeChanged.dword == 0x0004_0002)
        #expect(AsyncEventCompletion.discoveryLogChanged.dword == 0x0070_F002)
        #expect(AsyncEventCompletion.reservationLog.dword == 0x0080_0006)
        let parsed = AsyncEventCompletion(dword: 0x000C_0302)
        #expect(parsed == .anaChange)
        #expect(parsed.type == .notice)
        #expect(parsed.eventInformation == 0x03)
        #expect(parsed.logPageIdentifier == LogPageIdentifier.ana.rawValue)
    }

    @Test func asyncEventConfigurationBits() {
        #expect(AsyncEventConfiguration.smartMask.rawValue == 0xFF)
        #expect(AsyncEventConfiguration.namespaceAttribute.rawValue == 0x100)
        #expect(AsyncEventConfiguration.firmwareActivation.rawValue == 0x200)
        #expect(AsyncEventConfiguration.anaChange.rawValue == 0x800)
        #expect(AsyncEventConfiguration.discoveryLogChange.rawValue == 0x8000_0000)
        let ioController: AsyncEventConfiguration = [.namespaceAttribute, .anaChange]
        #expect(ioController.rawValue == 0x0000_0900)  // matches OAES for an I/O controller
        #expect(AsyncEventConfiguration(rawValue: 0x8000_0900).contains(.discoveryLogChange))
    }

    @Test func numberOfQueues() {
        let queues = NumberOfQueues(dword: 0x0003_0007)
        #expect(queues.submissionQueues == 7)
        #expect(queues.completionQueues == 3)
        #expect(NumberOfQueues(submissionQueues: 0x10, completionQueues: 0x20).dword == 0x0020_0010)
    }

    @Test func featureIdentifiersAndCommandFields() {
        #expect(FeatureIdentifier.numberOfQueues.rawValue == 0x07)
        #expect(FeatureIdentifier.asyncEventConfiguration.rawValue == 0x0B)
        #expect(FeatureIdentifier.keepAliveTimer.rawValue == 0x0F)
        #expect(FeatureIdentifier.hostIdentifier.rawValue == 0x81)
        #expect(FeatureIdentifier.reservationNotificationMask.rawValue == 0x82)
        #expect(FeatureIdentifier.reservationPersistence.rawValue == 0x83)
        #expect(FeatureIdentifier.volatileWriteCache.rawValue == 0x06)
        let set = FeatureCommandFields(cdw10: 0x8000_0083)
        #expect(set.feature == .reservationPersistence)
        #expect(set.save)
        let get = FeatureCommandFields(cdw10: 0x0000_030B)
        #expect(get.feature == .asyncEventConfiguration)
        #expect(get.select == 3)
        #expect(!get.save)
        #expect(get.cdw10 == 0x0000_030B)
        #expect(FeatureCommandFields(cdw10: 0x16).feature == nil)
    }

    @Test func logPageIdentifiers() {
        #expect(LogPageIdentifier.error.rawValue == 0x01)
        #expect(LogPageIdentifier.smart.rawValue == 0x02)
        #expect(LogPageIdentifier.firmwareSlot.rawValue == 0x03)
        #expect(LogPageIdentifier.changedNamespaces.rawValue == 0x04)
        #expect(LogPageIdentifier.commandEffects.rawValue == 0x05)
        #expect(LogPageIdentifier.ana.rawValue == 0x0C)
        #expect(LogPageIdentifier.discovery.rawValue == 0x70)
        #expect(LogPageIdentifier.reservationNotification.rawValue == 0x80)
    }

    @Test func identifyCommandFields() {
        // CNS 01h, CNTID 0x1234; CSI 0.
        let controller = IdentifyCommandFields(cdw10: 0x1234_0001, cdw11: 0)
        #expect(controller.structure == .controller)
        #expect(controller.controllerID == 0x1234)
        #expect(controller.commandSetIdentifier == 0)
        // CNS 05h with CSI 2 (ZNS) and a CNS specific identifier.
        let ioNamespace = IdentifyCommandFields(cdw10: 0x05, cdw11: 0x0200_ABCD)
        #expect(ioNamespace.structure == .ioCommandSetNamespace)
        #expect(ioNamespace.commandSetIdentifier == 2)
        #expect(ioNamespace.cnsSpecificIdentifier == 0xABCD)
        #expect(ioNamespace.cdw10 == 0x05)
        #expect(ioNamespace.cdw11 == 0x0200_ABCD)
        #expect(IdentifyCommandFields(cdw10: 0x10, cdw11: 0).structure == nil)
        #expect(IdentifyCNS.namespace.rawValue == 0x00)
        #expect(IdentifyCNS.activeNamespaceList.rawValue == 0x02)
        #expect(IdentifyCNS.namespaceIdentificationDescriptors.rawValue == 0x03)
        #expect(IdentifyCNS.ioCommandSetController.rawValue == 0x06)
        #expect(IdentifyCNS.ioCommandSetIndependentNamespace.rawValue == 0x08)
        #expect(IdentifyCommandFields(structure: .activeNamespaceList, controllerID: 7).cdw10 == 0x0007_0002)
    }
}
