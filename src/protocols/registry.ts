// The protocol analyzers the engine can choose from, in probing order.

import type { ProtocolModule } from '../engine/dispatch.js';
import { dicomProtocol } from './dicom/index.js';
import { httpProtocol } from './http/index.js';
import { smbProtocol } from './smb/index.js';
import { tlsProtocol } from './tls/index.js';

export const PROTOCOLS: readonly ProtocolModule[] = [
  dicomProtocol,
  smbProtocol,
  tlsProtocol,
  httpProtocol,
];
