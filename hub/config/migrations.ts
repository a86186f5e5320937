/**
 * Config format migrations. Each entry lifts a parsed file from version N to N+1 and says what it
 * changed, so `check-config` can tell the user how to update the file on disk.
 * Version 0 is the preview format (no `version` key): `storeId` at the top, `http` for the API and
 * `mqtt` for the broker. The loader applies every step from the file's version to CONFIG_VERSION.
 */
import { CONFIG_VERSION } from './schema.js';

type Raw = Record<string, unknown>;
export interface ConfigMigration {
  from: number;
  describe: string;
  up(raw: Raw): Raw;
}

function renameKey(raw: Raw, from: string, to: string): void {
  if (from in raw && !(to in raw)) {
    raw[to] = raw[from];
    delete raw[from];
  }
}

export const CONFIG_MIGRATIONS: ConfigMigration[] = [
  {
    from: 0,
    describe: 'version 0 -> 1: storeId -> store.id, http -> api, mqtt -> broker',
    up(raw) {
      const out: Raw = { ...raw };
      if ('storeId' in out) {
        const store = (typeof out.store === 'object' && out.store !== null ? out.store : {}) as Raw;
        out.store = { id: out.storeId, ...store };
        delete out.storeId;
      }
      renameKey(out, 'http', 'api');
      renameKey(out, 'mqtt', 'broker');
      out.version = 1;
      return out;
    },
  },
];

export interface MigrationResult {
  raw: Raw;
  fromVersion: number;
  applied: string[];
}

/** Returns the migrated object, or a problem string when the version cannot be handled. */
export function migrateConfig(raw: Raw): MigrationResult | string {
  const declared = raw.version ?? 0;
  if (typeof declared !== 'number' || !Number.isInteger(declared) || declared < 0) {
    return `version: must be a non-negative integer, got ${JSON.stringify(declared)}`;
  }
  if (declared > CONFIG_VERSION) {
    return `version: ${declared} is newer than this storehub understands (${CONFIG_VERSION}); upgrade storehub`;
  }
  let current = raw;
  const applied: string[] = [];
  for (let v = declared; v < CONFIG_VERSION; v++) {
    const step = CONFIG_MIGRATIONS.find((m) => m.from === v);
    if (!step) return `version: no migration from version ${v}`;
    current = step.up(current);
    applied.push(step.describe);
  }
  return { raw: current, fromVersion: declared, applied };
}
