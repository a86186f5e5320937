/**
 * Opens the hub's SQLite database: integrity check, salvage on corruption, explicit pragmas, migrations.
 * The durability policy (docs/durability.md) is applied here, on every open: better-sqlite3 silently
 * drops to synchronous=NORMAL when it reopens an existing WAL file, so we always set it ourselves.
 */
import { randomUUID } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readSync, statSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { HubError } from '../sdk/errors.js';
import { BUSY_TIMEOUT_MS } from './busy-timeout.js';
import { migrate } from './migrate.js';
import { type SalvageReport, salvageInto } from './salvage.js';
import { buildAndSwap, markerOf, moveAside, pendingSalvage } from './salvage-swap.js';

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
  /** Told before a salvage starts (it can take minutes on a large file), with the reason. */
  onSalvage?: (reason: string) => void;
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

export { BUSY_TIMEOUT_MS } from './busy-timeout.js';

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
  const wal = walHeaderProblem(`${file}-wal`);
  if (wal !== null) return wal;
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

/**
 * SQLite ignores a WAL whose header is damaged — and with it every commit in it — and the next
 * connection to close resets the file, erasing the evidence. A WAL long enough to hold a frame
 * must start with the WAL magic and a header checksum that matches (sqlite.org/fileformat2.html).
 */
function walHeaderProblem(walFile: string): string | null {
  if (fileSize(walFile) <= WAL_HEADER_BYTES) return null;
  const header = Buffer.alloc(WAL_HEADER_BYTES);
  const fd = openSync(walFile, 'r');
  try {
    readSync(fd, header, 0, WAL_HEADER_BYTES, 0);
  } finally {
    closeSync(fd);
  }
  const magic = header.readUInt32BE(0);
  if (magic !== 0x377f0682 && magic !== 0x377f0683) return `the WAL file's header is damaged (magic ${magic.toString(16)}): its commits cannot be recovered`;
  const bigEndian = (magic & 1) === 1;
  let s0 = 0;
  let s1 = 0;
  for (let i = 0; i < 24; i += 8) {
    const x0 = bigEndian ? header.readUInt32BE(i) : header.readUInt32LE(i);
    const x1 = bigEndian ? header.readUInt32BE(i + 4) : header.readUInt32LE(i + 4);
    s0 = (s0 + x0 + s1) >>> 0;
    s1 = (s1 + x1 + s0) >>> 0;
  }
  if (s0 !== header.readUInt32BE(24) || s1 !== header.readUInt32BE(28)) return "the WAL file's header checksum does not match: its commits cannot be recovered";
  return null;
}

const WAL_HEADER_BYTES = 32;

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
  let migrationsApplied: number[] = [];

  if (options.mode === 'tool') {
    // a tool must not create an empty hub.db where a salvage is half done, nor finish it itself
    if (existsSync(markerOf(file)))
      throw new HubError('HUB_ERR_STORE_UNAVAILABLE', `${file}: the salvage of a corrupt database is unfinished; start the hub (storehub start) to finish it`);
  } else {
    let pending = pendingSalvage(file);
    if (!pending && existsSync(file)) {
      const reason = checkIntegrity(file);
      if (reason !== null) {
        const damagedFile = `${file}.corrupt-${new Date(now()).toISOString().replace(/[:.]/g, '-')}`;
        moveAside(file, damagedFile, reason);
        pending = { damagedFile, reason };
      }
    }
    if (pending) {
      const { damagedFile, reason } = pending;
      options.onSalvage?.(reason);
      const salvage = buildAndSwap(file, (fresh) => {
        applyPragmas(fresh, options.synchronous);
        migrationsApplied = migrate(fresh);
        const report = salvageInto(damagedFile, fresh);
        // A restored database may miss records the cloud already has: a new epoch tells it so.
        const oldEpoch = Number(meta(fresh, 'epoch') ?? '0');
        setMeta(fresh, 'epoch', String(Math.max(oldEpoch + 1, freshEpoch(now()))));
        if (meta(fresh, 'hub_id') === undefined) setMeta(fresh, 'hub_id', randomUUID());
        fresh
          .prepare('INSERT INTO incidents (time, kind, detail) VALUES (?, ?, ?)')
          .run(now(), 'store.salvaged', JSON.stringify({ reason, damagedFile, salvage: report }));
        return report;
      });
      corruption = { reason, damagedFile, salvage };
    }
  }

  const db = new Database(file);
  applyPragmas(db, options.synchronous);
  migrationsApplied = [...migrationsApplied, ...migrate(db)];

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
