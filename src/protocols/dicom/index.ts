// The DICOM Upper Layer (PS3.8) and DIMSE (PS3.7) analyzer, as the engine sees it.

import type { AnalyzerFactory, Side } from '../../engine/types.js';
import { createDicomAnalyzer } from './analyzer.js';
import { DEFAULT_DICOM_LIMITS, type DicomLimits } from './limits.js';
import { probeDicom } from './probe.js';

export { createDicomAnalyzer, DicomAnalyzer } from './analyzer.js';
export { DEFAULT_DICOM_LIMITS, type DicomLimits, resolveDicomLimits } from './limits.js';
export { probeDicom } from './probe.js';

export interface DicomProtocol {
  readonly name: 'dicom';
  probe(side: Side, head: Buffer): boolean | undefined;
  create: AnalyzerFactory;
  /** 104 is the well-known DICOM port, 11112 the registered one that dcmtk uses. */
  readonly defaultPorts: number[];
}

/** Builds the protocol entry with limits other than the defaults (from configuration). */
export function makeDicomProtocol(limits: Partial<DicomLimits> = {}): DicomProtocol {
  return {
    name: 'dicom',
    probe: probeDicom,
    create: (flow, sink) => createDicomAnalyzer(flow, sink, limits),
    defaultPorts: [104, 11112],
  };
}

export const dicomProtocol: DicomProtocol = makeDicomProtocol(DEFAULT_DICOM_LIMITS);
