import type Database from 'better-sqlite3';
import { HubError } from '../sdk/errors.js';
import { LATEST_SCHEMA_VERSION, SCHEMA_MIGRATIONS } from './migrations.js';

/** Applies every migration above the database's user_version; returns the versions applied. */
export function migrate(db: Database.Database, upTo = LATEST_SCHEMA_VERSION): number[] {
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current > LATEST_SCHEMA_VERSION) {
    throw new HubError(
      'HUB_ERR_STORE_NEWER_SCHEMA',
      `database schema ${current} is newer than this storehub (${LATEST_SCHEMA_VERSION}); refusing to downgrade`,
    );
  }
  const applied: number[] = [];
  for (const m of SCHEMA_MIGRATIONS) {
    if (m.version <= current || m.version > upTo) continue;
    try {
      db.transaction(() => {
        db.exec(m.sql);
        db.pragma(`user_version = ${m.version}`);
      })();
    } catch (cause) {
      throw new HubError('HUB_ERR_STORE_MIGRATION', `migration ${m.version} (${m.name}) failed: ${(cause as Error).message}`, { cause });
    }
    applied.push(m.version);
  }
  return applied;
}
