// Turns analyzer observations into event fields. Patient IDs, SMB file paths and URL paths go
// through the pseudonymizer, because exports and uploads are often named after the patient.
// docs/events.md lists the fields.

import type { EventAction, EventCategory, EventType } from '../events/ecs.js';
import type { PseudonymKind } from '../events/pseudonymize.js';
import { hostFromAuthority } from '../protocols/http/host.js';
import type { EngineFlow } from './flow.js';
import type { EventHeader } from './flow-events.js';
import type {
  DicomAssociationSummary,
  Observation,
  Side,
  SmbFileAccess,
  SmbSessionSummary,
} from './types.js';

/** Distinct study or patient values listed in one event; the counts stay exact. */
const MAX_LISTED_VALUES = 100;
/** Presentation contexts listed in one event; storage SCUs propose over a hundred. */
const MAX_LISTED_CONTEXTS = 16;

export interface ObservationContext {
  flow: EngineFlow;
  pseudonymizer: { value(kind: PseudonymKind, clear: string): string };
  moveRequester:
    | { requesterIp: string; requesterPort: number; callingAeTitle: string; flowId: string }
    | undefined;
}

type ObservationEvent = { header: EventHeader; fields: Record<string, unknown> };

export function observationEvent(
  observation: Observation,
  context: ObservationContext,
): ObservationEvent | null {
  switch (observation.kind) {
    case 'dicom-association':
      return dicomAssociationEvent(observation.summary, context);
    case 'http-request':
      return httpRequestEvent(observation, context);
    case 'tls-client-hello':
      return {
        header: header(['network'], ['protocol'], 'tls-client-hello', 'tollgate.tls'),
        fields: {
          tls: {
            client: { server_name: observation.serverName, supported_alpn: observation.alpn },
            version: tlsVersionText(observation.version),
            version_protocol: 'tls',
          },
        },
      };
    case 'smb-session':
      return smbSessionEvent(observation.summary);
    case 'smb-file-access':
      return smbFileAccessEvent(observation.access, context);
    default:
      return null;
  }
}

function header(
  category: EventCategory[],
  type: EventType[],
  action: EventAction,
  dataset: string,
): EventHeader {
  return { kind: 'event', category, type, action, dataset };
}

function sideName(flow: EngineFlow, side: Side | null): string | undefined {
  if (side === null) return undefined;
  if (flow.insideSide === null) return side === 0 ? 'initiator' : 'responder';
  return side === flow.insideSide ? 'inside' : 'remote';
}

function dicomAssociationEvent(
  summary: DicomAssociationSummary,
  context: ObservationContext,
): { header: EventHeader; fields: Record<string, unknown> } {
  const { flow, pseudonymizer } = context;
  const patients = summary.patients.map((id) => pseudonymizer.value('patient-id', id));
  const dicom: Record<string, unknown> = {
    calling_ae_title: summary.callingAeTitle,
    called_ae_title: summary.calledAeTitle,
    requestor: sideName(flow, summary.requestorSide),
    outcome: summary.outcome,
    commands: summary.commands,
    failure_statuses: summary.failureStatuses,
    move_destinations: summary.moveDestinations,
    data_sender: sideName(flow, summary.dataSenderSide),
    instances: summary.instances,
    dataset_bytes: summary.datasetBytes,
    studies: { count: summary.studies.length, uids: summary.studies.slice(0, MAX_LISTED_VALUES) },
    patients: { count: patients.length, ids: patients.slice(0, MAX_LISTED_VALUES) },
    presentation_context_count: summary.presentationContexts.length,
    presentation_contexts: summary.presentationContexts
      .slice(0, MAX_LISTED_CONTEXTS)
      .map((context) => ({
        id: context.id,
        abstract_syntax: context.abstractSyntax,
        accepted: context.accepted,
        transfer_syntax: context.acceptedTransferSyntax,
      })),
    max_pdu_length: summary.maxPduLength,
  };
  if (summary.rejectReason !== undefined) dicom.reject = summary.rejectReason;
  if (summary.abortReason !== undefined) dicom.abort = summary.abortReason;
  if (context.moveRequester !== undefined) {
    dicom.move_requested_by = {
      ip: context.moveRequester.requesterIp,
      port: context.moveRequester.requesterPort,
      ae_title: context.moveRequester.callingAeTitle,
      flow_id: context.moveRequester.flowId,
    };
  }

  const egress = summary.dataSenderSide !== null && summary.dataSenderSide === flow.insideSide;
  return {
    header: header(
      ['network'],
      egress ? ['connection', 'info'] : ['connection'],
      'dicom-association',
      'tollgate.dicom',
    ),
    fields: { tollgate: { dicom } },
  };
}

function httpRequestEvent(
  observation: Extract<Observation, { kind: 'http-request' }>,
  context: ObservationContext,
): ObservationEvent {
  const request: Record<string, unknown> = {
    method: observation.method,
    body: { bytes: observation.requestBodyBytes },
  };
  if (observation.contentType !== undefined) request.mime_type = observation.contentType;
  const response: Record<string, unknown> = { body: { bytes: observation.responseBodyBytes } };
  if (observation.responseStatus !== undefined) response.status_code = observation.responseStatus;

  const fields: Record<string, unknown> = {
    http: { version: '1.1', request, response },
    url: urlFields(observation.target, observation.host, context),
    tollgate: { http: { chunked: observation.chunked, incomplete: observation.incomplete } },
  };
  if (observation.userAgent !== undefined) fields.user_agent = { original: observation.userAgent };
  return {
    header: header(['network', 'web'], ['access'], 'http-request', 'tollgate.http'),
    fields,
  };
}

/**
 * ECS url fields. The target's path and query are pseudonymized like file paths, because
 * uploads are often named after the patient; the domain and the extension stay in clear.
 */
function urlFields(
  target: string,
  host: string | undefined,
  context: ObservationContext,
): Record<string, unknown> {
  const { pseudonymizer } = context;
  const url: Record<string, unknown> = { original: pseudonymizer.value('url-path', target) };
  if (target.startsWith('/')) {
    const path = target.split('?')[0] ?? target;
    url.path = pseudonymizer.value('url-path', path);
    const extension = fileExtension(path);
    if (extension !== undefined) url.extension = extension;
  }
  if (host !== undefined) {
    url.domain = hostFromAuthority(host) ?? host;
    const port = /:([0-9]{1,5})$/.exec(host)?.[1];
    if (port !== undefined) url.port = Number(port);
  }
  return url;
}

function smbSessionEvent(summary: SmbSessionSummary): ObservationEvent {
  const fields: Record<string, unknown> = {
    tollgate: {
      smb: {
        session: {
          id: summary.sessionId,
          domain: summary.domain,
          workstation: summary.workstation,
          auth: summary.auth,
          dialect: summary.dialect,
          encrypted: summary.encrypted,
          signed: summary.signed,
          legacy_smb1: summary.legacySmb1,
          shares: summary.shares,
          files_opened: summary.filesOpened,
          files_read_fully: summary.filesReadFully,
          bytes_read: summary.bytesRead,
          bytes_written: summary.bytesWritten,
          directory_listings: summary.directoryListings,
          directory_entries: summary.directoryEntries,
          outcome: summary.outcome,
        },
      },
    },
  };
  if (summary.user !== '') fields.user = { name: summary.user, domain: summary.domain };
  return {
    header: header(['network', 'session'], ['info'], 'smb-session', 'tollgate.smb'),
    fields,
  };
}

function smbFileAccessEvent(access: SmbFileAccess, context: ObservationContext): ObservationEvent {
  const { pseudonymizer } = context;
  const file: Record<string, unknown> = {
    path: pseudonymizer.value('file-path', access.path),
    size: access.endOfFile,
    type: access.directory ? 'dir' : 'file',
  };
  const extension = fileExtension(access.path);
  if (extension !== undefined) file.extension = extension;

  const smbFile: Record<string, unknown> = {
    share: access.share,
    bytes_read: access.bytesRead,
    bytes_written: access.bytesWritten,
    read_fully: access.readFully,
    looks_like_dicom: access.looksLikeDicom,
    disposition: access.disposition,
    desired_access: access.desiredAccess,
    first_seen: new Date(Math.floor(access.firstTs)).toISOString(),
    last_seen: new Date(Math.floor(access.lastTs)).toISOString(),
    outcome: access.outcome,
  };
  if (access.renamedTo !== undefined)
    smbFile.renamed_to = pseudonymizer.value('file-path', access.renamedTo);
  if (access.deleted === true) smbFile.deleted = true;

  const fields: Record<string, unknown> = { file, tollgate: { smb: { file: smbFile } } };
  if (access.user !== '') fields.user = { name: access.user };
  const type: EventType[] = access.bytesWritten > 0 ? ['access', 'change'] : ['access'];
  return { header: header(['file', 'network'], type, 'smb-file-access', 'tollgate.smb'), fields };
}

/** The lower-case extension of the last path component, when it has a short one. */
function fileExtension(path: string): string | undefined {
  const name = path.slice(Math.max(path.lastIndexOf('\\'), path.lastIndexOf('/')) + 1);
  const dot = name.lastIndexOf('.');
  if (dot <= 0 || name.length - dot > 11) return undefined;
  return name.slice(dot + 1).toLowerCase();
}

function tlsVersionText(version: number): string {
  const minor = version & 0xff;
  if (version >> 8 !== 3) return 'unknown';
  return minor === 0 ? '3.0' : `1.${minor - 1}`;
}
