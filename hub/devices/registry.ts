/**
 * The device registry: what the hub knows of every configured device (kind, model, firmware,
 * battery, last seen, availability with its reason, rejected-input counts). Health and info
 * changes are written at once (they are rare); "last seen" changes with every message, so it is
 * kept in memory and written every few seconds.
 */
import type Database from 'better-sqlite3';
import type { DeviceHealth, DeviceInfo, RejectReason } from '../sdk/driver.js';

export interface DeviceRecord {
  id: string;
  kind: string;
  model: string | null;
  firmware: string | null;
  battery: number | null;
  lastSeen: number | null;
  availability: DeviceHealth['availability'];
  reason: string | null;
  rejected: Partial<Record<RejectReason, number>>;
}

interface Row {
  id: string;
  kind: string;
  model: string | null;
  firmware: string | null;
  battery: number | null;
  last_seen: number | null;
  availability: DeviceHealth['availability'];
  reason: string | null;
}

export class DeviceRegistry {
  private readonly records = new Map<string, DeviceRecord>();
  private readonly dirtySeen = new Set<string>();

  constructor(
    private readonly db: Database.Database,
    private readonly now: () => number = Date.now,
  ) {
    for (const row of db.prepare('SELECT * FROM devices').all() as Row[]) {
      this.records.set(row.id, {
        id: row.id,
        kind: row.kind,
        model: row.model,
        firmware: row.firmware,
        battery: row.battery,
        lastSeen: row.last_seen,
        availability: row.availability,
        reason: row.reason,
        rejected: {},
      });
    }
  }

  /** Registers a configured device; until its driver reports, it is offline. */
  register(id: string, kind: string, model?: string): DeviceRecord {
    const existing = this.records.get(id);
    const record: DeviceRecord = existing
      ? { ...existing, kind, model: model ?? existing.model, availability: 'offline', reason: 'starting' }
      : { id, kind, model: model ?? null, firmware: null, battery: null, lastSeen: null, availability: 'offline', reason: 'starting', rejected: {} };
    this.records.set(id, record);
    this.persist(record);
    return record;
  }

  get(id: string): DeviceRecord | undefined {
    return this.records.get(id);
  }

  list(): DeviceRecord[] {
    return [...this.records.values()].sort((a, b) => a.id.localeCompare(b.id));
  }

  /** Sets health; returns the previous health when it changed, undefined when it did not. */
  setHealth(id: string, health: DeviceHealth): DeviceHealth | undefined {
    const record = this.records.get(id);
    if (!record) return undefined;
    const previous: DeviceHealth = { availability: record.availability, ...(record.reason ? { reason: record.reason } : {}) };
    if (previous.availability === health.availability && (previous.reason ?? null) === (health.reason ?? null)) return undefined;
    record.availability = health.availability;
    record.reason = health.reason ?? null;
    this.persist(record);
    return previous;
  }

  setInfo(id: string, info: DeviceInfo): void {
    const record = this.records.get(id);
    if (!record) return;
    if (info.model !== undefined) record.model = info.model;
    if (info.firmware !== undefined) record.firmware = info.firmware;
    if (info.battery !== undefined) record.battery = info.battery;
    this.persist(record);
  }

  seen(id: string, time = this.now()): void {
    const record = this.records.get(id);
    if (!record) return;
    record.lastSeen = time;
    this.dirtySeen.add(id);
  }

  countReject(id: string, reason: RejectReason): void {
    const record = this.records.get(id);
    if (record) record.rejected[reason] = (record.rejected[reason] ?? 0) + 1;
  }

  /** Writes the last-seen times changed since the previous flush. */
  flushSeen(): void {
    if (this.dirtySeen.size === 0) return;
    const update = this.db.prepare('UPDATE devices SET last_seen = ? WHERE id = ?');
    this.db.transaction(() => {
      for (const id of this.dirtySeen) update.run(this.records.get(id)?.lastSeen ?? null, id);
    })();
    this.dirtySeen.clear();
  }

  private persist(r: DeviceRecord): void {
    this.db
      .prepare(
        `INSERT INTO devices (id, kind, model, firmware, battery, last_seen, availability, reason, updated_at)
         VALUES (@id, @kind, @model, @firmware, @battery, @lastSeen, @availability, @reason, @now)
         ON CONFLICT (id) DO UPDATE SET kind = excluded.kind, model = excluded.model, firmware = excluded.firmware,
           battery = excluded.battery, last_seen = excluded.last_seen, availability = excluded.availability,
           reason = excluded.reason, updated_at = excluded.updated_at`,
      )
      .run({
        id: r.id,
        kind: r.kind,
        model: r.model,
        firmware: r.firmware,
        battery: r.battery,
        lastSeen: r.lastSeen,
        availability: r.availability,
        reason: r.reason,
        now: this.now(),
      });
  }
}
