import { SmbAnomaly, type SmbAnomalyName } from '../anomalies.js';

/** Why a command could not be decoded: an anomaly name and bounded numeric details. */
export interface DecodeFailure {
  failure: SmbAnomalyName;
  details: Record<string, number>;
}

export function beyondCommand(field: string, end: number, commandLength: number): DecodeFailure {
  return {
    failure: SmbAnomaly.lengthBeyondMessage,
    details: { [`${field}End`]: end, commandLength },
  };
}

export function isFailure<T>(result: T | DecodeFailure): result is DecodeFailure {
  return typeof result === 'object' && result !== null && 'failure' in result;
}
