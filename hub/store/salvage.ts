/**
 * Copies what can still be read from a damaged database into a fresh one. SQLite reads a damaged
 * b-tree until it meets a bad page and then fails the statement, so rowid tables are read in
 * rowid-ordered chunks; a chunk that fails is retried smaller, and a single unreadable row is stepped
 * over with a growing stride. Rows lost this way are counted, never guessed.
 */
import Database from 'better-sqlite3';

export interface TableSalvage {
  table: string;
  recovered: number;
  /** Read errors met while scanning (each may hide one or more rows). */
  readErrors: number;
}

export interface SalvageReport {
  readable: boolean;
  error?: string;
  tables: TableSalvage[];
}

const CHUNK = 500;
/**
 * When the table's largest rowid cannot be read (its last leaf is damaged), the scan has no end to stop
 * at: give up after this many failed steps in a row (at the 4096 stride, about a million rowids past the
 * last readable row) instead of stepping on for the full guard (ten million failing reads, minutes).
 */
const MAX_BLIND_MISSES = 256;

function columnsOf(db: Database.Database, table: string): string[] {
  return (db.pragma(`table_info("${table}")`) as { name: string }[]).map((c) => c.name);
}

function copyRowidTable(src: Database.Database, insert: (row: Record<string, unknown>) => void, table: string, cols: string[]): TableSalvage {
  const result: TableSalvage = { table, recovered: 0, readErrors: 0 };
  const list = cols.map((c) => `"${c}"`).join(', ');
  const page = src.prepare(`SELECT rowid AS __rowid, ${list} FROM "${table}" WHERE rowid > ? ORDER BY rowid LIMIT ?`);
  let maxRowid: number | undefined;
  try {
    maxRowid = (src.prepare(`SELECT max(rowid) AS m FROM "${table}"`).get() as { m: number | null }).m ?? 0;
  } catch {
    maxRowid = undefined;
  }
  let misses = 0;
  let cursor = Number.MIN_SAFE_INTEGER;
  let limit = CHUNK;
  let stride = 1;
  /** The last position a single-row read failed at, while stepping over a bad page. */
  let failedAt: number | undefined;
  for (let guard = 0; guard < 10_000_000; guard++) {
    let rows: Record<string, unknown>[];
    try {
      rows = page.all(cursor, limit) as Record<string, unknown>[];
    } catch {
      result.readErrors++;
      if (limit > 1) {
        limit = Math.max(1, Math.floor(limit / 4));
        continue;
      }
      if (maxRowid === undefined ? ++misses > MAX_BLIND_MISSES : cursor >= maxRowid) break;
      failedAt = cursor;
      cursor = cursor === Number.MIN_SAFE_INTEGER ? 0 : cursor + stride;
      stride = Math.min(stride * 2, 4096);
      continue;
    }
    if (failedAt !== undefined) {
      // The growing stride may have jumped past readable rows just after the bad page: reads fail
      // from `failedAt` up to the bad page's last rowid and succeed from there on, so the first
      // position that reads is found by bisection, and the scan goes on from it.
      const first = firstReadable((position) => page.all(position, 1), failedAt, cursor, result);
      failedAt = undefined;
      if (first < cursor) {
        cursor = first;
        continue;
      }
    }
    if (rows.length === 0) break;
    for (const row of rows) {
      cursor = row.__rowid as number;
      delete row.__rowid;
      insert(row);
      result.recovered++;
    }
    limit = CHUNK;
    stride = 1;
    misses = 0;
  }
  return result;
}

/** The smallest position in (failed, readable] from which `probe` (a one-row read) succeeds. */
function firstReadable(probe: (position: number) => void, failed: number, readable: number, result: TableSalvage): number {
  let lo = failed === Number.MIN_SAFE_INTEGER ? -1 : failed;
  let hi = readable;
  while (hi - lo > 1) {
    const mid = lo + Math.floor((hi - lo) / 2);
    try {
      probe(mid);
      hi = mid;
    } catch {
      result.readErrors++;
      lo = mid;
    }
  }
  return hi;
}

/**
 * A table without rowids is read in primary-key order. When its key ends in an integer (the sync
 * outbox: stream, epoch, seq), a bad page is stepped over like a rowid table's: by that last
 * column, with a growing stride and a search back. Other keys cannot be stepped over: the copy
 * stops at the first unreadable page.
 */
function copyWithoutRowid(src: Database.Database, insert: (row: Record<string, unknown>) => void, table: string, cols: string[]): TableSalvage {
  const keyCols = (src.pragma(`table_info("${table}")`) as { name: string; pk: number; type: string }[]).filter((c) => c.pk > 0).sort((x, y) => x.pk - y.pk);
  const last = keyCols.at(-1);
  if (!last || !/INT/i.test(last.type) || !keyCols.every((k) => cols.includes(k.name))) return copyInOneGo(src, insert, table, cols);
  const result: TableSalvage = { table, recovered: 0, readErrors: 0 };
  const list = cols.map((c) => `"${c}"`).join(', ');
  const key = keyCols.map((k) => `"${k.name}"`).join(', ');
  const marks = keyCols.map(() => '?').join(', ');
  const first = src.prepare(`SELECT ${list} FROM "${table}" ORDER BY ${key} LIMIT ?`);
  const after = src.prepare(`SELECT ${list} FROM "${table}" WHERE (${key}) > (${marks}) ORDER BY ${key} LIMIT ?`);
  const read = (from: unknown[] | undefined, limit: number) => (from ? after.all(...from, limit) : first.all(limit)) as Record<string, unknown>[];
  let cursor: unknown[] | undefined;
  let limit = CHUNK;
  let stride = 1;
  let misses = 0;
  let failedAt: unknown[] | undefined;
  for (let guard = 0; guard < 10_000_000; guard++) {
    let rows: Record<string, unknown>[];
    try {
      rows = read(cursor, limit);
    } catch {
      result.readErrors++;
      if (limit > 1) {
        limit = Math.max(1, Math.floor(limit / 4));
        continue;
      }
      if (!cursor || ++misses > MAX_BLIND_MISSES) break;
      failedAt = cursor;
      cursor = [...cursor.slice(0, -1), (cursor.at(-1) as number) + stride];
      stride = Math.min(stride * 2, 4096);
      continue;
    }
    if (failedAt && cursor) {
      // as for rowid tables: find the first position after the bad page that reads, on the last column
      const prefix = cursor.slice(0, -1);
      const hi = firstReadable((position) => read([...prefix, position], 1), failedAt.at(-1) as number, cursor.at(-1) as number, result);
      failedAt = undefined;
      if (hi < (cursor.at(-1) as number)) {
        cursor = [...prefix, hi];
        continue;
      }
    }
    if (rows.length === 0) break;
    for (const row of rows) {
      insert(row);
      result.recovered++;
    }
    const end = rows.at(-1) as Record<string, unknown>;
    cursor = keyCols.map((k) => end[k.name]);
    limit = CHUNK;
    stride = 1;
    misses = 0;
  }
  return result;
}

function copyInOneGo(src: Database.Database, insert: (row: Record<string, unknown>) => void, table: string, cols: string[]): TableSalvage {
  const result: TableSalvage = { table, recovered: 0, readErrors: 0 };
  try {
    for (const row of src.prepare(`SELECT ${cols.map((c) => `"${c}"`).join(', ')} FROM "${table}"`).iterate()) {
      insert(row as Record<string, unknown>);
      result.recovered++;
    }
  } catch {
    result.readErrors++;
  }
  return result;
}

/** Salvages `damagedPath` into `fresh`, whose schema is already migrated to the latest version. */
export function salvageInto(damagedPath: string, fresh: Database.Database): SalvageReport {
  let src: Database.Database;
  let tables: { name: string; sql: string }[];
  try {
    src = new Database(damagedPath, { readonly: true, fileMustExist: true });
    // Tolerate what a damaged file says about itself: with writable_schema SQLite reads the schema
    // and the pages it can reach even when the header's page count runs past a truncated end.
    src.unsafeMode(true);
    src.pragma('writable_schema = ON');
    tables = src.prepare(`SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'`).all() as { name: string; sql: string }[];
  } catch (err) {
    return { readable: false, error: (err as Error).message, tables: [] };
  }
  const report: SalvageReport = { readable: true, tables: [] };
  try {
    for (const { name, sql } of tables) {
      const target = columnsOf(fresh, name);
      if (target.length === 0) continue; // a table the current schema no longer has
      let cols: string[];
      try {
        cols = columnsOf(src, name).filter((c) => target.includes(c));
      } catch {
        report.tables.push({ table: name, recovered: 0, readErrors: 1 });
        continue;
      }
      const stmt = fresh.prepare(`INSERT OR IGNORE INTO "${name}" (${cols.map((c) => `"${c}"`).join(', ')}) VALUES (${cols.map((c) => `@${c}`).join(', ')})`);
      const insert = (row: Record<string, unknown>) => stmt.run(row);
      const copy = /WITHOUT\s+ROWID/i.test(sql) ? copyWithoutRowid : copyRowidTable;
      report.tables.push(fresh.transaction(() => copy(src, insert, name, cols))());
    }
  } finally {
    src.close();
  }
  return report;
}
