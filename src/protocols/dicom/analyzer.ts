import type {
  Analyzer,
  AnalyzerSink,
  DimseCommandName,
  FlowView,
  Millis,
  Side,
} from '../../engine/types.js';
import { decodeAbortBody, decodeAssociateBody, decodeRejectBody } from './associate.js';
import { AssociationState } from './association.js';
import { type CommandSet, decodeCommandSet } from './command-set.js';
import {
  COMMAND_C_MOVE_RQ,
  COMMAND_C_STORE_RQ,
  COMMAND_FIELD_NAMES,
  NO_DATASET,
  PDV_COMMAND,
  PDV_LAST_FRAGMENT,
  PduType,
  STATUS_PENDING,
  STATUS_PENDING_WARNING,
  STATUS_SUCCESS,
} from './constants.js';
import { DatasetReader } from './dataset-reader.js';
import { type DicomLimits, resolveDicomLimits } from './limits.js';
import { PduReader } from './pdu-reader.js';

/** Every command set starts with Command Group Length (0000,0000), value length 4 (PS3.7 6.3.1). */
const COMMAND_SET_START = Buffer.from([0, 0, 0, 0, 4, 0, 0, 0]);

/**
 * Where one direction is in its DIMSE message stream (PS3.7 section 6.3, PS3.8 annex E):
 *   idle      between messages
 *   command   command fragments arriving
 *   dataset   command complete; dataset fragments expected or arriving
 *   unsynced  after a gap or a mid-stream start: waiting for a command set that starts cleanly
 */
type MessagePhase = 'idle' | 'command' | 'dataset' | 'unsynced';

/** What a dataset is read for: a stored instance, a C-MOVE identifier, or nothing (counted only). */
type DatasetPurpose = 'instance' | 'move' | 'count';

interface SideState {
  reader: PduReader;
  phase: MessagePhase;
  commandParts: Buffer[];
  commandBytes: number;
  commandTooLarge: boolean;
  command: CommandSet | undefined;
  purpose: DatasetPurpose;
  dataset: DatasetReader | undefined;
  datasetReported: boolean;
  transferSyntaxUid: string | undefined;
  currentFragmentIsCommand: boolean;
  currentFragmentIsLast: boolean;
  /** Dataset head buffer, allocated on first use and reused for each dataset of this side. */
  head: Buffer | undefined;
}

export function createDicomAnalyzer(
  flow: FlowView,
  sink: AnalyzerSink,
  overrides: Partial<DicomLimits> = {},
): Analyzer {
  return new DicomAnalyzer(flow, sink, resolveDicomLimits(overrides));
}

export class DicomAnalyzer implements Analyzer {
  readonly protocol = 'dicom' as const;
  private readonly sides: [SideState, SideState];
  private association: AssociationState | undefined;
  private ts: Millis = 0;

  constructor(
    readonly flow: FlowView,
    private readonly sink: AnalyzerSink,
    private readonly limits: DicomLimits,
  ) {
    this.sides = [this.makeSide(0), this.makeSide(1)];
  }

  data(side: Side, chunk: Buffer, ts: Millis): void {
    this.ts = ts;
    this.sides[side].reader.feed(chunk);
  }

  gap(side: Side, length: number, ts: Millis): void {
    this.ts = ts;
    const state = this.sides[side];
    if (state.reader.state !== 'counting') {
      this.sink.anomaly('dicom.gap', ts, { side, length });
    }
    this.finishDataset(side);
    state.phase = 'unsynced';
    state.commandParts = [];
    state.commandBytes = 0;
    state.reader.gap(length);
  }

  end(ts: Millis): void {
    this.ts = ts;
    this.finishDataset(0);
    this.finishDataset(1);
    const association = this.association;
    if (association && !association.summaryEmitted) {
      association.outcome = association.releaseRequested ? 'released' : 'incomplete';
      this.emitSummary();
    }
  }

  private makeSide(side: Side): SideState {
    const state: SideState = {
      reader: new PduReader(this.limits, {
        pdu: (type, body) => this.onPdu(side, type, body),
        pdvStart: (contextId, controlHeader) => this.onPdvStart(side, contextId, controlHeader),
        pdvData: (chunk) => this.onPdvData(side, chunk),
        pdvEnd: () => this.onPdvEnd(side),
        anomaly: (name, details) => this.sink.anomaly(name, this.ts, { side, ...details }),
      }),
      phase: 'idle',
      commandParts: [],
      commandBytes: 0,
      commandTooLarge: false,
      command: undefined,
      purpose: 'count',
      dataset: undefined,
      datasetReported: false,
      transferSyntaxUid: undefined,
      currentFragmentIsCommand: false,
      currentFragmentIsLast: false,
      head: undefined,
    };
    return state;
  }

  // --- association PDUs (PS3.8 sections 9.3.2 to 9.3.8) ---------------------------------------

  private onPdu(side: Side, type: number, body: Buffer): void {
    switch (type) {
      case PduType.AssociateRq:
        this.onAssociateRequest(side, body);
        break;
      case PduType.AssociateAc:
        this.onAssociateAccept(side, body);
        break;
      case PduType.AssociateRj: {
        const association = this.ensureAssociation();
        association.outcome = 'rejected';
        const reason = decodeRejectBody(body);
        if (reason) {
          association.rejectReason = reason;
        } else {
          this.sink.anomaly('dicom.bad_item', this.ts, { side, type, length: body.length });
        }
        this.emitSummary();
        break;
      }
      case PduType.ReleaseRq:
        this.ensureAssociation().releaseRequested = true;
        break;
      case PduType.ReleaseRp: {
        const association = this.ensureAssociation();
        association.outcome = 'released';
        this.emitSummary();
        break;
      }
      case PduType.Abort: {
        const association = this.ensureAssociation();
        association.outcome = 'aborted';
        const reason = decodeAbortBody(body);
        if (reason) {
          association.abortReason = reason;
        }
        this.emitSummary();
        break;
      }
      default:
        break;
    }
  }

  private onAssociateRequest(side: Side, body: Buffer): void {
    const decoded = decodeAssociateBody(body);
    if (decoded === undefined) {
      this.sink.anomaly('dicom.bad_item', this.ts, {
        side,
        type: PduType.AssociateRq,
        length: body.length,
      });
      return;
    }
    this.reportItemProblem(side, PduType.AssociateRq, decoded.problem);
    if (this.association && !this.association.summaryEmitted) {
      this.emitSummary();
    }
    const association = new AssociationState(this.limits.maxSummaryValues);
    association.applyRequest(side, decoded);
    this.association = association;
    this.sink.observe(
      {
        kind: 'dicom-association-request',
        callingAeTitle: association.callingAeTitle,
        calledAeTitle: association.calledAeTitle,
        requestorSide: side,
      },
      this.ts,
    );
  }

  private onAssociateAccept(side: Side, body: Buffer): void {
    const decoded = decodeAssociateBody(body);
    if (decoded === undefined) {
      this.sink.anomaly('dicom.bad_item', this.ts, {
        side,
        type: PduType.AssociateAc,
        length: body.length,
      });
      return;
    }
    this.reportItemProblem(side, PduType.AssociateAc, decoded.problem);
    this.ensureAssociation().applyAccept(decoded);
  }

  private reportItemProblem(
    side: Side,
    type: number,
    problem: { item: number; length: number; available: number } | undefined,
  ): void {
    if (problem) {
      this.sink.anomaly('dicom.bad_item', this.ts, { side, type, ...problem });
    }
  }

  /** Returns the current association, creating a mid-stream one when negotiation was not seen. */
  private ensureAssociation(): AssociationState {
    if (this.association === undefined) {
      const association = new AssociationState(this.limits.maxSummaryValues);
      association.midStream = true;
      this.association = association;
      this.sink.anomaly('dicom.midstream', this.ts);
    }
    return this.association;
  }

  private emitSummary(): void {
    const association = this.association;
    if (association === undefined || association.summaryEmitted) {
      return;
    }
    association.summaryEmitted = true;
    if (association.droppedValues > 0) {
      this.sink.anomaly('dicom.summary_truncated', this.ts, {
        dropped: association.droppedValues,
        limit: this.limits.maxSummaryValues,
      });
    }
    this.sink.observe({ kind: 'dicom-association', summary: association.toSummary() }, this.ts);
  }

  // --- P-DATA-TF and DIMSE messages (PS3.8 annex E, PS3.7 section 6.3) ------------------------

  private onPdvStart(side: Side, contextId: number, controlHeader: number): void {
    const state = this.sides[side];
    const isCommand = (controlHeader & PDV_COMMAND) !== 0;
    state.currentFragmentIsCommand = isCommand;
    state.currentFragmentIsLast = (controlHeader & PDV_LAST_FRAGMENT) !== 0;
    if (this.association === undefined) {
      // Mid-stream pickup: the first fragment may be the middle of a message on either side.
      this.ensureAssociation();
      this.sides[0].phase = 'unsynced';
      this.sides[1].phase = 'unsynced';
    }

    if (isCommand) {
      if (state.phase === 'dataset' || state.phase === 'idle') {
        this.finishDataset(side);
        state.phase = 'command';
        state.commandParts = [];
        state.commandBytes = 0;
        state.commandTooLarge = false;
      }
      return;
    }

    if (state.phase === 'command') {
      this.sink.anomaly('dicom.bad_command_set', this.ts, {
        side,
        reason: 0,
        length: state.commandBytes,
      });
      state.phase = 'idle';
    }
    if (state.phase === 'dataset' && state.dataset === undefined) {
      state.transferSyntaxUid = this.association?.syntaxOf(contextId)?.uid;
      this.startDataset(side, contextId);
    }
  }

  private onPdvData(side: Side, chunk: Buffer): void {
    const state = this.sides[side];
    if (state.currentFragmentIsCommand) {
      this.collectCommand(side, chunk);
      return;
    }
    if (this.association) {
      this.association.datasetBytes += chunk.length;
    }
    const dataset = state.dataset;
    if (state.phase !== 'dataset' || dataset === undefined) {
      return;
    }
    // The report waits for the end of the PDV so its byte count does not depend on TCP splits.
    dataset.push(chunk);
  }

  private onPdvEnd(side: Side): void {
    const state = this.sides[side];
    if (!state.currentFragmentIsCommand && state.dataset?.finished && !state.datasetReported) {
      this.reportDataset(side);
    }
    if (!state.currentFragmentIsLast) {
      return;
    }
    if (state.currentFragmentIsCommand) {
      this.finishCommand(side);
    } else if (state.phase === 'dataset') {
      this.finishDataset(side);
      state.phase = 'idle';
    }
  }

  private collectCommand(side: Side, chunk: Buffer): void {
    const state = this.sides[side];
    if (state.phase !== 'command' && state.phase !== 'unsynced') {
      return;
    }
    state.commandBytes += chunk.length;
    if (state.commandBytes > this.limits.maxCommandSetBytes) {
      if (!state.commandTooLarge && state.phase === 'command') {
        this.sink.anomaly('dicom.command_set_too_large', this.ts, {
          side,
          length: state.commandBytes,
          limit: this.limits.maxCommandSetBytes,
        });
      }
      state.commandTooLarge = true;
      state.commandParts = [];
      return;
    }
    // Chunks are views the caller may reuse, so the command set's bytes are copied.
    state.commandParts.push(Buffer.from(chunk));
  }

  private finishCommand(side: Side): void {
    const state = this.sides[side];
    const unsynced = state.phase === 'unsynced';
    const bytes = Buffer.concat(
      state.commandParts,
      Math.min(state.commandBytes, this.limits.maxCommandSetBytes),
    );
    state.commandParts = [];
    state.commandBytes = 0;
    if (state.commandTooLarge) {
      state.commandTooLarge = false;
      this.association?.countCommand('OTHER');
      state.command = undefined;
      state.purpose = 'count';
      state.phase = 'dataset';
      return;
    }
    if (unsynced && !bytes.subarray(0, COMMAND_SET_START.length).equals(COMMAND_SET_START)) {
      // The tail of a command set whose start was missed: wait for the next one.
      return;
    }
    const decoded = decodeCommandSet(bytes);
    if (!decoded.ok || decoded.command.commandField === undefined) {
      const details: Record<string, number> = decoded.ok
        ? { side, reason: 1, length: bytes.length }
        : {
            side,
            reason: 2,
            tag: decoded.tag,
            length: decoded.length,
            available: decoded.available,
          };
      this.sink.anomaly('dicom.bad_command_set', this.ts, details);
      state.command = undefined;
      state.purpose = 'count';
      state.phase = 'dataset';
      return;
    }
    this.onCommand(side, decoded.command);
  }

  private onCommand(side: Side, command: CommandSet): void {
    const state = this.sides[side];
    const association = this.ensureAssociation();
    const field = command.commandField ?? -1;
    const name = (COMMAND_FIELD_NAMES.get(field) ?? 'OTHER') as DimseCommandName;
    association.countCommand(name);

    const isResponse = (field & 0x8000) !== 0;
    const status = command.status;
    if (
      isResponse &&
      status !== undefined &&
      status !== STATUS_SUCCESS &&
      status !== STATUS_PENDING &&
      status !== STATUS_PENDING_WARNING
    ) {
      association.countFailureStatus(status);
    }

    state.command = command;
    state.purpose = 'count';
    if (field === COMMAND_C_STORE_RQ) {
      association.dataSenderSide = side;
      state.purpose = 'instance';
    } else if (field === COMMAND_C_MOVE_RQ) {
      association.addMoveDestination(command.moveDestination ?? '');
      state.purpose = 'move';
    }

    state.dataset = undefined;
    state.datasetReported = false;
    const hasDataset = command.commandDataSetType !== NO_DATASET;
    if (hasDataset) {
      state.phase = 'dataset';
      return;
    }
    state.phase = 'idle';
    if (state.purpose === 'move') {
      this.reportMove(side);
    }
  }

  private startDataset(side: Side, contextId: number): void {
    const state = this.sides[side];
    if (state.purpose === 'count') {
      return;
    }
    state.head ??= Buffer.alloc(this.limits.maxLeadingAttributesBytes);
    const encoding = this.association?.syntaxOf(contextId)?.encoding;
    state.dataset = new DatasetReader(state.head, encoding);
    state.datasetReported = false;
  }

  /** Reports a dataset whose last fragment arrived or whose message was cut short. */
  private finishDataset(side: Side): void {
    const state = this.sides[side];
    if (state.dataset !== undefined && !state.datasetReported) {
      this.reportDataset(side);
    } else if (
      state.dataset === undefined &&
      state.purpose === 'move' &&
      state.phase === 'dataset'
    ) {
      // The C-MOVE identifier announced by the command never arrived.
      this.reportMove(side);
    }
    state.dataset = undefined;
    state.purpose = 'count';
  }

  private reportDataset(side: Side): void {
    const state = this.sides[side];
    const dataset = state.dataset;
    if (dataset === undefined || state.datasetReported) {
      return;
    }
    state.datasetReported = true;
    const problem = dataset.problem;
    if (problem) {
      this.sink.anomaly('dicom.bad_dataset', this.ts, { side, ...problem });
    }
    if (state.purpose === 'instance') {
      this.reportInstance(side, dataset);
    } else if (state.purpose === 'move') {
      this.reportMove(side);
    }
  }

  private reportInstance(side: Side, dataset: DatasetReader): void {
    const state = this.sides[side];
    const association = this.ensureAssociation();
    const attributes = { ...dataset.attributes };
    attributes.sopClassUid ??= state.command?.affectedSopClassUid;
    attributes.sopInstanceUid ??= state.command?.affectedSopInstanceUid;
    for (const key of Object.keys(attributes) as Array<keyof typeof attributes>) {
      if (attributes[key] === undefined) delete attributes[key];
    }
    association.instances += 1;
    association.addValue(association.studies, attributes.studyInstanceUid);
    association.addValue(association.patients, attributes.patientId);

    const observation = {
      kind: 'dicom-instance' as const,
      senderSide: side,
      command: 'C-STORE-RQ' as const,
      callingAeTitle: association.callingAeTitle,
      calledAeTitle: association.calledAeTitle,
      attributes,
      datasetBytes: dataset.bytes,
      attributesStatus: dataset.status,
      ...(state.transferSyntaxUid === undefined
        ? {}
        : { transferSyntaxUid: state.transferSyntaxUid }),
    };
    this.sink.observe(observation, this.ts);
  }

  private reportMove(side: Side): void {
    const state = this.sides[side];
    const association = this.ensureAssociation();
    const attributes = state.dataset?.attributes ?? {};
    const observation: {
      kind: 'dicom-move-request';
      callingAeTitle: string;
      calledAeTitle: string;
      moveDestination: string;
      studyInstanceUid?: string;
      patientId?: string;
    } = {
      kind: 'dicom-move-request',
      callingAeTitle: association.callingAeTitle,
      calledAeTitle: association.calledAeTitle,
      moveDestination: state.command?.moveDestination ?? '',
    };
    if (attributes.studyInstanceUid !== undefined)
      observation.studyInstanceUid = attributes.studyInstanceUid;
    if (attributes.patientId !== undefined) observation.patientId = attributes.patientId;
    this.sink.observe(observation, this.ts);
  }
}
