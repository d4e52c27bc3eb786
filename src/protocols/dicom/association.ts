import type { DicomAssociationSummary, DimseCommandName, Side } from '../../engine/types.js';
import type { AssociateBody } from './associate.js';
import { type DatasetEncoding, encodingOf } from './constants.js';

/** What the analyzer learns about one association while it runs; turned into a summary at its end. */
export class AssociationState {
  callingAeTitle = '';
  calledAeTitle = '';
  requestorSide: Side = 0;
  midStream = false;
  releaseRequested = false;
  summaryEmitted = false;
  outcome: DicomAssociationSummary['outcome'] = 'incomplete';
  rejectReason?: DicomAssociationSummary['rejectReason'];
  abortReason?: DicomAssociationSummary['abortReason'];
  maxPduLength = { requestor: 0, acceptor: 0 };
  applicationContextName?: string;
  implementation: NonNullable<DicomAssociationSummary['implementation']> = {};
  readonly contexts = new Map<number, DicomAssociationSummary['presentationContexts'][number]>();
  readonly commands: Partial<Record<DimseCommandName, number>> = {};
  readonly failureStatuses: Record<string, number> = {};
  readonly moveDestinations: string[] = [];
  dataSenderSide: Side | null = null;
  instances = 0;
  datasetBytes = 0;
  readonly studies = new Set<string>();
  readonly patients = new Set<string>();
  /** Values not kept because a summary list reached its limit. */
  droppedValues = 0;

  constructor(private readonly maxSummaryValues: number) {}

  applyRequest(side: Side, body: AssociateBody): void {
    this.requestorSide = side;
    this.callingAeTitle = body.callingAeTitle;
    this.calledAeTitle = body.calledAeTitle;
    this.maxPduLength.requestor = body.maxPduLength ?? 0;
    this.applicationContextName = body.applicationContextName;
    this.implementation.requestorClassUid = body.implementationClassUid;
    this.implementation.requestorVersionName = body.implementationVersionName;
    for (const context of body.presentationContexts) {
      this.contexts.set(context.id, {
        id: context.id,
        abstractSyntax: context.abstractSyntax ?? '',
        transferSyntaxes: context.transferSyntaxes,
        accepted: false,
      });
    }
  }

  /** A-ASSOCIATE-AC: a result of 0 accepts the context with the one transfer syntax it names. */
  applyAccept(body: AssociateBody): void {
    this.maxPduLength.acceptor = body.maxPduLength ?? 0;
    this.implementation.acceptorClassUid = body.implementationClassUid;
    this.implementation.acceptorVersionName = body.implementationVersionName;
    for (const answer of body.presentationContexts) {
      const context = this.contexts.get(answer.id);
      if (context === undefined) {
        continue;
      }
      context.accepted = answer.result === 0;
      const syntax = answer.transferSyntaxes[0];
      if (context.accepted && syntax !== undefined) {
        context.acceptedTransferSyntax = syntax;
      }
    }
  }

  /** The accepted transfer syntax of a presentation context and its dataset encoding, if known. */
  syntaxOf(contextId: number): { uid: string; encoding: DatasetEncoding } | undefined {
    const uid = this.contexts.get(contextId)?.acceptedTransferSyntax;
    return uid === undefined ? undefined : { uid, encoding: encodingOf(uid) };
  }

  countCommand(name: DimseCommandName): void {
    this.commands[name] = (this.commands[name] ?? 0) + 1;
  }

  countFailureStatus(status: number): void {
    const key = status.toString(16).padStart(4, '0');
    this.failureStatuses[key] = (this.failureStatuses[key] ?? 0) + 1;
  }

  addMoveDestination(title: string): void {
    if (this.moveDestinations.includes(title)) {
      return;
    }
    if (this.moveDestinations.length >= this.maxSummaryValues) {
      this.droppedValues += 1;
      return;
    }
    this.moveDestinations.push(title);
  }

  /** Adds a study or patient value; returns false when the set is full and the value is dropped. */
  addValue(set: Set<string>, value: string | undefined): boolean {
    if (value === undefined || value === '' || set.has(value)) {
      return true;
    }
    if (set.size >= this.maxSummaryValues) {
      this.droppedValues += 1;
      return false;
    }
    set.add(value);
    return true;
  }

  toSummary(): DicomAssociationSummary {
    const summary: DicomAssociationSummary = {
      callingAeTitle: this.callingAeTitle,
      calledAeTitle: this.calledAeTitle,
      requestorSide: this.requestorSide,
      maxPduLength: { ...this.maxPduLength },
      presentationContexts: [...this.contexts.values()],
      outcome: this.outcome,
      commands: { ...this.commands },
      failureStatuses: { ...this.failureStatuses },
      moveDestinations: [...this.moveDestinations],
      dataSenderSide: this.dataSenderSide,
      instances: this.instances,
      datasetBytes: this.datasetBytes,
      studies: [...this.studies],
      patients: [...this.patients],
    };
    if (this.rejectReason) summary.rejectReason = this.rejectReason;
    if (this.abortReason) summary.abortReason = this.abortReason;
    if (this.applicationContextName !== undefined) {
      summary.applicationContextName = this.applicationContextName;
    }
    const implementation = Object.fromEntries(
      Object.entries(this.implementation).filter(([, value]) => value !== undefined),
    );
    if (Object.keys(implementation).length > 0) summary.implementation = implementation;
    if (this.midStream) summary.midStream = true;
    return summary;
  }
}
