/**
 * Replaces a corrupt database with a salvaged one so that a crash at any point (power cut, kill -9,
 * systemd's start timeout) leaves a state the next start finishes, never a half-copied or empty
 * store that passes for a healthy one:
 *
 * 1. a marker `hub.db.salvage-pending` names the damaged file and the reason (synced);
 * 2. hub.db and its -wal/-shm are renamed to `hub.db.corrupt-<time>` (directory synced);
 * 3. the salvage is built in `hub.db.salvaging` (migrated, rows copied, epoch bumped, incident
 *    recorded) and closed, which checkpoints everything into that one file;
 * 4. it is renamed to hub.db (directory synced), and only then is the marker removed.
 *
 * A start that finds the marker resumes: if the damaged file is not there yet the rename never
 * happened and hub.db is still the original, checked again; otherwise whatever hub.db or
 * `hub.db.salvaging` exists is discarded and the salvage is built again from the damaged file.
 */
import { closeSync, existsSync, fsyncSync, openSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import Database from 'better-sqlite3';
import type { SalvageReport } from './salvage.js';

export interface PendingSalvage {
  damagedFile: string;
  reason: string;
}

const SIDE_FILES = ['-wal', '-shm'] as const;

export const markerOf = (file: string) => `${file}.salvage-pending`;
const buildingOf = (file: string) => `${file}.salvaging`;

/** The salvage a crashed start left unfinished, or undefined. Completes a half-done rename first. */
export function pendingSalvage(file: string): PendingSalvage | undefined {
  const marker = markerOf(file);
  if (!existsSync(marker)) return undefined;
  const { damaged, reason } = JSON.parse(readFileSync(marker, 'utf8')) as { damaged: string; reason: string };
  const damagedFile = join(dirname(file), damaged);
  if (!existsSync(damagedFile)) {
    // crashed before the damaged file was moved: hub.db is still the original, to be checked again
    rmSync(marker, { force: true });
    syncDir(dirname(file));
    return undefined;
  }
  if (existsSync(file)) {
    // a finished salvage renamed in just before the crash: built again below, the same way
    for (const f of [file, ...SIDE_FILES.map((s) => file + s)]) rmSync(f, { force: true });
  } else {
    // crashed between renaming hub.db and its side files: they belong to the damaged file
    for (const s of SIDE_FILES) if (existsSync(file + s) && !existsSync(damagedFile + s)) renameSync(file + s, damagedFile + s);
  }
  return { damagedFile, reason };
}

/** Steps 1 and 2: records the intent, then moves the corrupt file and its side files aside. */
export function moveAside(file: string, damagedFile: string, reason: string): void {
  const marker = markerOf(file);
  writeFileSync(marker, JSON.stringify({ damaged: basename(damagedFile), reason }));
  syncFile(marker);
  syncDir(dirname(file));
  renameSync(file, damagedFile);
  for (const s of SIDE_FILES) if (existsSync(file + s)) renameSync(file + s, damagedFile + s);
  syncDir(dirname(file));
}

/**
 * Steps 3 and 4: `build` fills a fresh database (already open on the building file) from the
 * damaged one; the result becomes hub.db and the marker goes.
 */
export function buildAndSwap(file: string, build: (db: Database.Database) => SalvageReport): SalvageReport {
  const building = buildingOf(file);
  for (const f of [building, ...SIDE_FILES.map((s) => building + s)]) rmSync(f, { force: true });
  const db = new Database(building);
  let report: SalvageReport;
  try {
    report = build(db);
  } finally {
    db.close(); // checkpoints the WAL into the file and removes it
  }
  syncFile(building);
  renameSync(building, file);
  syncDir(dirname(file));
  rmSync(markerOf(file), { force: true });
  syncDir(dirname(file));
  return report;
}

function syncFile(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function syncDir(dir: string): void {
  syncFile(dir);
}
