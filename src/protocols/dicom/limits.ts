/** Size limits for one DICOM flow. Each one has a test that lowers it and an anomaly when hit. */
export interface DicomLimits {
  /** Largest PDU length accepted; a larger length is 'dicom.pdu_too_large' and the side is counted only. */
  maxPduLength: number;
  /** Largest A-ASSOCIATE-RQ/AC body kept to decode its items ('dicom.associate_too_large'). */
  maxAssociateItemsBytes: number;
  /** Largest DIMSE command set kept to decode ('dicom.command_set_too_large'). */
  maxCommandSetBytes: number;
  /** Dataset head kept to read the leading attributes; the rest of the dataset is only counted. */
  maxLeadingAttributesBytes: number;
  /** Distinct study and patient values kept per association summary ('dicom.summary_truncated'). */
  maxSummaryValues: number;
}

export const DEFAULT_DICOM_LIMITS: Readonly<DicomLimits> = Object.freeze({
  maxPduLength: 16 * 1024 * 1024,
  // A request with all 128 presentation contexts and a few transfer syntaxes each is about 40 KiB.
  maxAssociateItemsBytes: 256 * 1024,
  maxCommandSetBytes: 64 * 1024,
  maxLeadingAttributesBytes: 64 * 1024,
  maxSummaryValues: 1024,
});

export function resolveDicomLimits(overrides: Partial<DicomLimits> = {}): DicomLimits {
  return { ...DEFAULT_DICOM_LIMITS, ...overrides };
}
