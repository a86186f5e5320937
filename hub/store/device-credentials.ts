/** Device credentials for the broker: id, kind, scrypt hash of the secret, allowed topic filters. */
import type Database from 'better-sqlite3';
import { DEVICE_ID_PATTERN, namespaceProblems } from '../broker/topic-acl.js';
import { HubError } from '../sdk/errors.js';
import { hashSecret, randomSecret } from './secrets.js';

export interface DeviceCredential {
  deviceId: string;
  kind: string;
  secretHash: string;
  /** Topic filters with {id} already replaced; the device may publish and subscribe only under these. */
  topics: string[];
  createdAt: number;
  updatedAt: number;
}

interface Row {
  device_id: string;
  kind: string;
  secret_hash: string;
  topics: string;
  created_at: number;
  updated_at: number;
}

const fromRow = (r: Row): DeviceCredential => ({
  deviceId: r.device_id,
  kind: r.kind,
  secretHash: r.secret_hash,
  topics: JSON.parse(r.topics) as string[],
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

/** The namespace a device gets when its kind names none: its own subtree. */
export const defaultTopics = (deviceId: string): string[] => [`devices/${deviceId}/#`];

export class DeviceCredentials {
  private readonly getStmt;
  constructor(private readonly db: Database.Database) {
    this.getStmt = db.prepare('SELECT * FROM device_credentials WHERE device_id = ?');
  }

  get(deviceId: string): DeviceCredential | undefined {
    const row = this.getStmt.get(deviceId) as Row | undefined;
    return row ? fromRow(row) : undefined;
  }

  list(): DeviceCredential[] {
    return (this.db.prepare('SELECT * FROM device_credentials ORDER BY device_id').all() as Row[]).map(fromRow);
  }

  /**
   * Creates a device and returns its secret; the secret is not stored and cannot be shown again.
   * Refuses (HUB_ERR_DEVICE_INVALID) an id that is not a plain name and topic filters that are not
   * a namespace of its own (see namespaceProblems), whoever asks: the CLI and the API alike.
   */
  async add(deviceId: string, kind: string, topics: string[] = defaultTopics(deviceId), now = Date.now()): Promise<string> {
    if (!DEVICE_ID_PATTERN.test(deviceId))
      throw new HubError(
        'HUB_ERR_DEVICE_INVALID',
        `device id ${JSON.stringify(deviceId)}: letters, digits, '.', '_' and '-' only (1 to 64, starting with a letter or digit)`,
      );
    const expanded = topics.map((t) => t.replaceAll('{id}', deviceId));
    this.check(deviceId, expanded); // fail fast, before the slow hash
    const secret = randomSecret();
    const hash = await hashSecret(secret);
    // Checked again with the insert, in one IMMEDIATE transaction: another add may have landed while
    // scrypt ran (two API calls at once, or `storehub device add` in another process).
    this.db
      .transaction(() => {
        this.check(deviceId, expanded);
        this.db
          .prepare('INSERT INTO device_credentials (device_id, kind, secret_hash, topics, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)')
          .run(deviceId, kind, hash, JSON.stringify(expanded), now, now);
      })
      .immediate();
    return secret;
  }

  private check(deviceId: string, topics: string[]): void {
    if (this.get(deviceId)) throw new HubError('HUB_ERR_DEVICE_EXISTS', `device ${deviceId} already exists`);
    const problems = namespaceProblems(topics, this.list());
    if (problems.length > 0) throw new HubError('HUB_ERR_DEVICE_INVALID', `device ${deviceId}: ${problems.join('; ')}`, { context: { problems } });
  }

  remove(deviceId: string): boolean {
    return this.db.prepare('DELETE FROM device_credentials WHERE device_id = ?').run(deviceId).changes > 0;
  }
}
