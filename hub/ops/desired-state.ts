/**
 * Desired state: versioned hub configuration sent by HQ (`{ version, config }`, docs/cloud-protocol.md).
 * A version is applied at most once and never goes backwards: one not newer than the applied one is
 * refused. "Applied" means validated against the hub's config schema and recorded in `desired_states`
 * (schema v7) as the desired document; the hub does not yet reconfigure itself at run time from it.
 */
import type Database from 'better-sqlite3';
import { parseConfigText } from '../config/load.js';

export interface AppliedDesiredState {
  version: number;
  config: unknown;
  jobId: string;
  appliedAt: number;
}

export class DesiredStateStore {
  constructor(private readonly db: Database.Database) {}

  /** The newest applied desired state, if any. */
  applied(): AppliedDesiredState | undefined {
    const row = this.db.prepare('SELECT version, config, job_id, applied_at FROM desired_states ORDER BY version DESC LIMIT 1').get() as
      { version: number; config: string; job_id: string; applied_at: number } | undefined;
    return row && { version: row.version, config: JSON.parse(row.config) as unknown, jobId: row.job_id, appliedAt: row.applied_at };
  }

  appliedVersion(): number {
    return this.applied()?.version ?? 0;
  }

  /** Records a version as applied; call inside the transaction that finishes its job. */
  record(version: number, config: unknown, jobId: string, now: number): void {
    this.db.prepare('INSERT INTO desired_states (version, config, job_id, applied_at) VALUES (?, ?, ?, ?)').run(version, JSON.stringify(config), jobId, now);
  }
}

/** Why `version` may not be applied over `appliedVersion`, or undefined when it is newer. */
export function staleVersionReason(version: number, appliedVersion: number): string | undefined {
  if (version < appliedVersion) return `older than applied version ${appliedVersion}`;
  if (version === appliedVersion) return `already applied: not newer than applied version ${appliedVersion}`;
  return undefined;
}

/** Problems of a desired config against the hub's config schema (the same loader as a config file), one line each. */
export function desiredConfigProblems(config: unknown): string[] {
  // JSON is YAML, so the file loader checks it exactly as it would check the same config on disk.
  const { problems } = parseConfigText(JSON.stringify(config), 'desired state');
  return problems.map((p) => `${p.path}: ${p.message}`);
}
