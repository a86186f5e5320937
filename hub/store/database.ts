/**
 * Opens the hub's SQLite database: integrity check, salvage on corruption, explicit pragmas, migrations.
 * The durability policy (docs/durability.md) is applied here, on every open: better-sqlite3 silently
 * drops to synchronous=NORMAL when it reopens an existing WAL file, so we always set it ourselves.
 */
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, renameSync, statSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { HubError } from '../sdk/errors.js';
import { migrate } from './migrate.js';
import { type SalvageReport, salvageInto } from './salvage.js';

export type Synchronous = 'full' | 'normal';

export interface OpenOptions {
  dataDir: string;
  synchronous: Synchronous;
  /**
   * 'daemon' checks integrity and salvages a corrupt file; 'tool' (the CLI, possibly beside a running
   * hub) must never move the file away, so it skips the check and fails on a damaged file instead.
   */
  mode?: 'daemon' | 'tool';
  /** Clock, replaceable in tests. */
  now?: () => number;
}

export interface CorruptionReport {
  reason: string;
  damagedFile: string;
  salvage: SalvageReport;
}

export interface OpenedStore {
  db: Database.Database;
  file: string;
  hubEpoch: number;
  hubId: string;
  migrationsApplied: number[];
  corruption?: CorruptionReport;
}

export const DB_FILE = 'hub.db';

/** How long a statement waits for another connection's lock before SQLITE_BUSY. */
export const BUSY_TIMEOUT_MS = 5000;

/**
 * The epoch of a database that starts from nothing (new, or salvaged from an unreadable file): its
 * creation time in seconds. A hub whose database was lost and recreated keeps its configured hub id,
 * so counting epochs from 1 again would make its new records look like ones the cloud already has.
 */
export function freshEpoch(nowMs: number): number {
  return Math.floor(nowMs / 1000);
}

function applyPragmas(db: Database.Database, synchronous: Synchronous): void {
  db.pragma('journal_mode = WAL');
  db.pragma(`synchronous = ${synchronous === 'full' ? 'FULL' : 'NORMAL'}`);
  db.pragma('foreign_keys = ON');
  db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
  // No automatic checkpoints on this connection: they would run inside an ingest commit and stall
  // the event loop; hub/store/checkpointer.ts runs them on a worker thread instead.
  db.pragma('wal_autocheckpoint = 0');
}

/**
 * Returns null when the file looks healthy, or the reason it is corrupt. Only corruption is a
 * reason to move the file aside: a file that is locked, unreadable (permissions) or on a failing
 * disk is not corrupt, and salvaging it would set a healthy database aside, so those errors stop
 * the start instead (HUB_ERR_STORE_UNAVAILABLE).
 */
function checkIntegrity(file: string): string | null {
  // SQLite takes a zero-length file for a new, empty database. The hub never leaves one behind
  // with its WAL empty (setting WAL mode writes the first page), so one is a file that lost its data.
  if (statSync(file).size === 0 && fileSize(`${file}-wal`) === 0) return 'the database file is empty (0 bytes)';
  let db: Database.Database | undefined;
  try {
    db = new Database(file, { fileMustExist: true });
    const rows = db.pragma('quick_check') as { quick_check: string }[];
    const problems = rows.map((r) => r.quick_check).filter((r) => r !== 'ok');
    return problems.length === 0 ? null : problems.slice(0, 5).join('; ');
  } catch (err) {
    const code = String((err as { code?: unknown }).code ?? '');
    if (code.startsWith('SQLITE_CORRUPT') || code.startsWith('SQLITE_NOTADB')) return (err as Error).message;
    throw new HubError('HUB_ERR_STORE_UNAVAILABLE', `${file}: ${(err as Error).message}`, { cause: err, context: { code } });
  } finally {
    db?.close();
  }
}

function fileSize(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

function meta(db: Database.Database, key: string): string | undefined {
  return (db.prepare('SELECT value FROM meta WHERE key = ?').get(key) as { value: string } | undefined)?.value;
}

function setMeta(db: Database.Database, key: string, value: string): void {
  db.prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value').run(key, value);
}

export function openStore(options: OpenOptions): OpenedStore {
  const now = options.now ?? Date.now;
  mkdirSync(options.dataDir, { recursive: true });
  const file = join(options.dataDir, DB_FILE);
  let corruption: CorruptionReport | undefined;

  if (options.mode !== 'tool' && existsSync(file)) {
    const reason = checkIntegrity(file);
    if (reason !== null) {
      const damagedFile = `${file}.corrupt-${new Date(now()).toISOString().replace(/[:.]/g, '-')}`;
      renameSync(file, damagedFile);
      for (const suffix of ['-wal', '-shm']) {
        if (existsSync(file + suffix)) renameSync(file + suffix, damagedFile + suffix);
      }
      corruption = { reason, damagedFile, salvage: { readable: false, tables: [] } };
    }
  }

  const db = new Database(file);
  applyPragmas(db, options.synchronous);
  const migrationsApplied = migrate(db);

  if (corruption) {
    corruption.salvage = salvageInto(corruption.damagedFile, db);
    // A restored database may miss records the cloud already has: a new epoch tells it so.
    const oldEpoch = Number(meta(db, 'epoch') ?? '0');
    setMeta(db, 'epoch', String(Math.max(oldEpoch + 1, freshEpoch(now()))));
    db.prepare('INSERT INTO incidents (time, kind, detail) VALUES (?, ?, ?)').run(
      now(),
      'store.salvaged',
      JSON.stringify({ reason: corruption.reason, damagedFile: corruption.damagedFile, salvage: corruption.salvage }),
    );
  }
  if (meta(db, 'hub_id') === undefined) setMeta(db, 'hub_id', randomUUID());
  if (meta(db, 'epoch') === undefined) setMeta(db, 'epoch', String(freshEpoch(now())));

  return {
    db,
    file,
    hubId: meta(db, 'hub_id') as string,
    hubEpoch: Number(meta(db, 'epoch')),
    migrationsApplied,
    ...(corruption ? { corruption } : {}),
  };
}
