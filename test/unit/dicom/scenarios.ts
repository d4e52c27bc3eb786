import {
  associateAc,
  associateRq,
  CT,
  commandSet,
  EXPLICIT,
  explicitDataset,
  fragments,
  IMPLICIT,
  implicitDataset,
  MOVE_STUDY_ROOT,
  pdata,
  releaseRp,
  releaseRq,
} from './build.js';
import type { Step } from './helpers.js';

export const SOP_1 = '1.2.826.0.1.3680043.10.999.1.1.1.1';
export const SOP_2 = '1.2.826.0.1.3680043.10.999.1.2.1.1';

/** A PACS storing one implicit and one explicit VR instance, datasets in 40-byte PDVs, then release. */
export function storeAssociation(): Step[] {
  const contexts = [
    { id: 1, abstractSyntax: CT, transferSyntaxes: [IMPLICIT] },
    { id: 3, abstractSyntax: CT, transferSyntaxes: [EXPLICIT] },
  ];
  const store = (messageId: number, contextId: number, sop: string, dataset: Buffer): Step[] => [
    {
      side: 0,
      bytes: pdata(
        ...fragments(
          contextId,
          true,
          commandSet({
            commandField: 0x0001,
            messageId,
            sopClass: CT,
            sopInstance: sop,
            hasDataset: true,
          }),
          30,
        ),
      ),
    },
    ...fragments(contextId, false, dataset, 40).map(
      (pdv): Step => ({ side: 0, bytes: pdata(pdv) }),
    ),
    {
      side: 1,
      bytes: pdata(
        ...fragments(
          contextId,
          true,
          commandSet({
            commandField: 0x8001,
            respondedTo: messageId,
            status: messageId === 2 ? 0xb000 : 0,
            hasDataset: false,
          }),
          200,
        ),
      ),
    },
  ];
  return [
    { side: 0, bytes: associateRq('PACS', 'VENDOR_SCP', contexts) },
    {
      side: 1,
      bytes: associateAc('PACS', 'VENDOR_SCP', [
        { id: 1, result: 0, transferSyntax: IMPLICIT },
        { id: 3, result: 0, transferSyntax: EXPLICIT },
      ]),
    },
    ...store(1, 1, SOP_1, implicitDataset(SOP_1)),
    ...store(2, 3, SOP_2, explicitDataset(SOP_2)),
    { side: 0, bytes: releaseRq() },
    { side: 1, bytes: releaseRp() },
  ];
}

/** The A-ASSOCIATE-RQ and -AC of a vendor's C-MOVE association with the archive. */
export function moveAssociationStart(): Step[] {
  return [
    {
      side: 0,
      bytes: associateRq('VENDOR', 'ARCHIVE', [
        { id: 1, abstractSyntax: MOVE_STUDY_ROOT, transferSyntaxes: [EXPLICIT] },
      ]),
    },
    {
      side: 1,
      bytes: associateAc('VENDOR', 'ARCHIVE', [{ id: 1, result: 0, transferSyntax: EXPLICIT }]),
    },
  ];
}

/** The PDV fragments of the vendor's C-MOVE-RQ command set, Move Destination EVIL. */
export function moveCommandFragments() {
  return fragments(
    1,
    true,
    commandSet({
      commandField: 0x0021,
      messageId: 7,
      sopClass: MOVE_STUDY_ROOT,
      moveDestination: 'EVIL',
      hasDataset: true,
    }),
    500,
  );
}

/** A vendor asking the archive to C-MOVE a study to the AE title EVIL. */
export function moveAssociation(): Step[] {
  const identifier = Buffer.concat([
    // (0008,0052) Query/Retrieve Level, explicit VR LE
    Buffer.from('08005200435306005354554459 20'.replace(/ /g, ''), 'hex'),
    // (0020,000D) Study Instance UID, UI, length 30
    Buffer.from('20000d0055491e00', 'hex'),
    Buffer.from('1.2.826.0.1.3680043.10.999.1.1'),
  ]);
  return [
    ...moveAssociationStart(),
    {
      side: 0,
      bytes: pdata(...moveCommandFragments(), ...fragments(1, false, identifier, 500)),
    },
    {
      side: 1,
      bytes: pdata(
        ...fragments(
          1,
          true,
          commandSet({ commandField: 0x8021, respondedTo: 7, status: 0xa702, hasDataset: false }),
          500,
        ),
      ),
    },
    { side: 0, bytes: releaseRq() },
    { side: 1, bytes: releaseRp() },
  ];
}
