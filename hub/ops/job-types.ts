/**
 * The contract of a job type. The job machinery (document envelope, persistence, per-target locks,
 * waves, abort threshold, timeouts, cancel, restart, status reports) is shared; a type only says what
 * its document holds, which targets it has, and what running it on one target means. Adding a type
 * (price pushes, when price tags exist) is one file in hub/ops/types/ and one line in its index.
 */
import type { KeyObject } from 'node:crypto';
import type Database from 'better-sqlite3';
import type { TProperties } from '@sinclair/typebox';
import type { Logger } from '../observability/logger.js';
import type { DeviceCommander } from './device-commander.js';
import type { ImageFetcher } from './firmware-image.js';
import type { Job } from './job-view.js';

/** The fields every job document has, whatever its type (job-document.ts adds them to each schema). */
export interface JobDocumentBase {
  type: string;
  /** Chosen by the sender to make redelivery harmless; the hub makes one up when it is absent. */
  id?: string;
  timeoutSeconds?: number;
}

export interface PlannedExecution {
  target: string;
  wave: number;
}

/** How one target ended. */
export interface TargetOutcome {
  status: 'SUCCEEDED' | 'FAILED' | 'REJECTED';
  reason?: string;
  result?: unknown;
  /** Synchronous writes that must commit together with the execution's terminal status, or not at all. */
  commit?: () => void;
}

/** How preparing a job (before any target is touched) ended. */
export type Preparation<P> = { ok: true; prepared: P } | { ok: false; status: 'REJECTED' | 'FAILED'; reason: string };

/** What a job type may use. */
export interface JobTypeContext {
  db: Database.Database;
  commander: DeviceCommander;
  /** Parsed `ops.firmwareKeys`. */
  firmwareKeys: readonly KeyObject[];
  fetchImage: ImageFetcher;
  log: Logger;
  now(): number;
}

/**
 * A job type over documents `D` with per-job prepared data `P`. Methods (not function properties),
 * so a list of types of different documents type-checks as `JobType[]`.
 */
export interface JobType<D extends JobDocumentBase = JobDocumentBase, P = unknown> {
  readonly type: string;
  /** One line for docs and the OpenAPI description. */
  readonly summary: string;
  /** The type's own document fields as TypeBox properties; the envelope (type, id, timeoutSeconds) is added. */
  readonly fields: TProperties;
  /**
   * What a restart does to an execution it found IN_PROGRESS: `retry` runs it again (the operation is
   * idempotent), `fail` ends it FAILED (it may already have taken effect and must not be repeated).
   */
  readonly onInterrupted: 'retry' | 'fail';
  /** Structural problems the schema cannot express; any makes the document malformed. */
  problems?(doc: D): string[];
  /** The targets, in order, with their waves. */
  plan(doc: D): PlannedExecution[];
  /** A reason to refuse the whole job now (checked at submit and again before it runs), or undefined. */
  admit?(doc: D, ctx: JobTypeContext): string | undefined;
  /** Work before any target is touched (fetching and verifying an image); may refuse or fail the job. */
  prepare?(doc: D, ctx: JobTypeContext, signal: AbortSignal): Promise<Preparation<P>>;
  /** The share of a wave's targets that may fail before the rollout is aborted; undefined: never abort. */
  abortThreshold?(doc: D): number | undefined;
  /**
   * Runs the job on one target. The signal aborts only when the hub stops: then it should return
   * (or throw) promptly, and the execution is left IN_PROGRESS for the restart to settle.
   */
  execute(target: string, doc: D, prepared: P, ctx: JobTypeContext, signal: AbortSignal): Promise<TargetOutcome>;
  /** The document as the API shows it (leave out image bytes and secrets); default: as submitted. */
  redact?(doc: D): unknown;
  /** What the hub reports upstream for this job once it is terminal (the `reported` topic), if anything. */
  reported?(doc: D, job: Job): unknown;
}
