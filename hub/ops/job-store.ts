/**
 * Jobs and their per-target executions in SQLite (tables `jobs` and `job_executions`, schema v7).
 * Every status change goes through the state machine (job-states.ts) and is written with a
 * compare-and-set on the status it was read in, so an illegal or stale move is refused here, not
 * only in the caller; a refused move returns undefined and writes nothing.
 */
import type Database from 'better-sqlite3';
import { type JobEvent, type JobStatus, isTerminal, nextStatus } from './job-states.js';
import type { PlannedExecution } from './job-types.js';
import { emptyCounts, type JobExecution, type JobFilter, type JobSource } from './job-view.js';

export interface StoredJob {
  id: string;
  type: string;
  source: JobSource;
  status: JobStatus;
  reason: string | null;
  timeoutSeconds: number;
  createdAt: number;
  updatedAt: number;
  startedAt: number | null;
  completedAt: number | null;
  deadlineAt: number;
}

export interface NewJob {
  id: string;
  type: string;
  source: JobSource;
  timeoutSeconds: number;
  createdAt: number;
  /** The document exactly as submitted (JSON text), kept to resume the job after a restart. */
  document: string;
}

interface JobRow {
  id: string;
  type: string;
  source: JobSource;
  status: JobStatus;
  reason: string | null;
  timeout_seconds: number;
  created_at: number;
  updated_at: number;
  started_at: number | null;
  completed_at: number | null;
  deadline_at: number;
}

interface ExecutionRow {
  target: string;
  wave: number;
  status: JobStatus;
  reason: string | null;
  result: string | null;
  attempts: number;
  started_at: number | null;
  completed_at: number | null;
  updated_at: number;
}

const JOB_COLUMNS = 'id, type, source, status, reason, timeout_seconds, created_at, updated_at, started_at, completed_at, deadline_at';

const jobFromRow = (r: JobRow): StoredJob => ({
  id: r.id,
  type: r.type,
  source: r.source,
  status: r.status,
  reason: r.reason,
  timeoutSeconds: r.timeout_seconds,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
  startedAt: r.started_at,
  completedAt: r.completed_at,
  deadlineAt: r.deadline_at,
});

const executionFromRow = (r: ExecutionRow): JobExecution => ({
  target: r.target,
  wave: r.wave,
  status: r.status,
  reason: r.reason,
  result: r.result === null ? null : (JSON.parse(r.result) as unknown),
  attempts: r.attempts,
  startedAt: r.started_at,
  completedAt: r.completed_at,
  updatedAt: r.updated_at,
});

export class JobStore {
  constructor(private readonly db: Database.Database) {}

  transaction<T>(fn: () => T): T {
    return this.db.transaction(fn)();
  }

  /** Inserts a QUEUED job with one QUEUED execution per planned target. */
  insert(job: NewJob, executions: readonly PlannedExecution[]): void {
    const insertJob = this.db.prepare(
      `INSERT INTO jobs (id, type, source, status, reason, timeout_seconds, created_at, updated_at, deadline_at, document)
       VALUES (?, ?, ?, 'QUEUED', NULL, ?, ?, ?, ?, ?)`,
    );
    const insertExecution = this.db.prepare(`INSERT INTO job_executions (job_id, target, position, wave, status, updated_at) VALUES (?, ?, ?, ?, 'QUEUED', ?)`);
    this.transaction(() => {
      const deadline = job.createdAt + Math.round(job.timeoutSeconds * 1000);
      insertJob.run(job.id, job.type, job.source, job.timeoutSeconds, job.createdAt, job.createdAt, deadline, job.document);
      executions.forEach((e, position) => insertExecution.run(job.id, e.target, position, e.wave, job.createdAt));
    });
  }

  job(id: string): StoredJob | undefined {
    const row = this.db.prepare(`SELECT ${JOB_COLUMNS} FROM jobs WHERE id = ?`).get(id) as JobRow | undefined;
    return row && jobFromRow(row);
  }

  /** The document as submitted (JSON text). */
  document(id: string): string | undefined {
    return (this.db.prepare('SELECT document FROM jobs WHERE id = ?').get(id) as { document: string } | undefined)?.document;
  }

  executions(jobId: string): JobExecution[] {
    return (
      this.db
        .prepare(
          `SELECT target, wave, status, reason, result, attempts, started_at, completed_at, updated_at
           FROM job_executions WHERE job_id = ? ORDER BY position`,
        )
        .all(jobId) as ExecutionRow[]
    ).map(executionFromRow);
  }

  execution(jobId: string, target: string): JobExecution | undefined {
    const row = this.db
      .prepare(
        `SELECT target, wave, status, reason, result, attempts, started_at, completed_at, updated_at FROM job_executions WHERE job_id = ? AND target = ?`,
      )
      .get(jobId, target) as ExecutionRow | undefined;
    return row && executionFromRow(row);
  }

  counts(jobId: string): Record<JobStatus, number> {
    const counts = emptyCounts();
    for (const r of this.db.prepare('SELECT status, count(*) AS n FROM job_executions WHERE job_id = ? GROUP BY status').all(jobId) as {
      status: JobStatus;
      n: number;
    }[])
      counts[r.status] = r.n;
    return counts;
  }

  list(filter: JobFilter = {}): StoredJob[] {
    const conditions: [string, string | undefined][] = [
      ['status = ?', filter.status],
      ['type = ?', filter.type],
      ['source = ?', filter.source],
    ];
    const where = conditions.filter(([, value]) => value !== undefined).map(([sql]) => sql);
    const params = conditions.flatMap(([, value]) => (value === undefined ? [] : [value]));
    const sql = `SELECT ${JOB_COLUMNS} FROM jobs ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY seq DESC LIMIT ?`;
    return (this.db.prepare(sql).all(...params, filter.limit ?? 100) as JobRow[]).map(jobFromRow);
  }

  /** Jobs not yet in a terminal state, oldest first: what a start resumes. */
  unfinished(): StoredJob[] {
    return (this.db.prepare(`SELECT ${JOB_COLUMNS} FROM jobs WHERE status IN ('QUEUED', 'IN_PROGRESS') ORDER BY seq`).all() as JobRow[]).map(jobFromRow);
  }

  /** Applies an event to a job; returns the new status, or undefined when the move is not legal. */
  moveJob(id: string, event: JobEvent, reason: string | null, now: number): JobStatus | undefined {
    const current = this.job(id);
    if (!current) return undefined;
    const next = nextStatus(current.status, event);
    if (!next) return undefined;
    const changed = this.db
      .prepare(
        `UPDATE jobs SET status = ?, reason = coalesce(?, reason), updated_at = ?,
           started_at = CASE WHEN ? = 'IN_PROGRESS' THEN ? ELSE started_at END,
           completed_at = CASE WHEN ? THEN ? ELSE completed_at END
         WHERE id = ? AND status = ?`,
      )
      .run(next, reason, now, next, now, isTerminal(next) ? 1 : 0, now, id, current.status).changes;
    return changed === 1 ? next : undefined;
  }

  /** Applies an event to one execution; returns the new status, or undefined when the move is not legal. */
  moveExecution(jobId: string, target: string, event: JobEvent, detail: { reason?: string | null; result?: unknown }, now: number): JobStatus | undefined {
    const current = this.execution(jobId, target);
    if (!current) return undefined;
    const next = nextStatus(current.status, event);
    if (!next) return undefined;
    const changed = this.db
      .prepare(
        `UPDATE job_executions SET status = ?, reason = coalesce(?, reason), result = coalesce(?, result), updated_at = ?,
           attempts = attempts + CASE WHEN ? = 'IN_PROGRESS' THEN 1 ELSE 0 END,
           started_at = CASE WHEN ? = 'IN_PROGRESS' THEN ? ELSE started_at END,
           completed_at = CASE WHEN ? THEN ? ELSE completed_at END
         WHERE job_id = ? AND target = ? AND status = ?`,
      )
      .run(
        next,
        detail.reason ?? null,
        detail.result === undefined ? null : JSON.stringify(detail.result),
        now,
        next,
        next,
        now,
        isTerminal(next) ? 1 : 0,
        now,
        jobId,
        target,
        current.status,
      ).changes;
    return changed === 1 ? next : undefined;
  }

  /** Applies one event to every execution of a job that is in one of `from`; returns the targets moved. */
  moveExecutionsIn(jobId: string, from: readonly JobStatus[], event: JobEvent, reason: string, now: number): string[] {
    const moved: string[] = [];
    for (const e of this.executions(jobId)) {
      if (from.includes(e.status) && this.moveExecution(jobId, e.target, event, { reason }, now)) moved.push(e.target);
    }
    return moved;
  }

  /** An IN_PROGRESS execution that a restart interrupted and that will be run again. */
  markRetry(jobId: string, target: string, reason: string, now: number): boolean {
    return (
      this.db
        .prepare(`UPDATE job_executions SET attempts = attempts + 1, reason = ?, updated_at = ? WHERE job_id = ? AND target = ? AND status = 'IN_PROGRESS'`)
        .run(reason, now, jobId, target).changes === 1
    );
  }

  /** Executions IN_PROGRESS now, by job type (the in-progress gauge). */
  inProgressByType(): Map<string, number> {
    const rows = this.db
      .prepare(`SELECT j.type AS type, count(*) AS n FROM job_executions e JOIN jobs j ON j.id = e.job_id WHERE e.status = 'IN_PROGRESS' GROUP BY j.type`)
      .all() as { type: string; n: number }[];
    return new Map(rows.map((r) => [r.type, r.n]));
  }
}
