/** Opens the store named by a config file for a CLI command, beside a hub that may be running. */
import { loadConfigFile } from '../config/load.js';
import type { HubConfig } from '../config/schema.js';
import { isHubError } from '../sdk/errors.js';
import { Store } from '../store/store.js';

export function loadConfigOrExit(file: string): HubConfig {
  try {
    return loadConfigFile(file).config;
  } catch (err) {
    if (isHubError(err)) {
      process.stderr.write(`${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
}

export function withToolStore<T>(configFile: string, fn: (store: Store, config: HubConfig) => T | Promise<T>): Promise<T> {
  const config = loadConfigOrExit(configFile);
  const store = new Store({ dataDir: config.dataDir, synchronous: 'full', maxBytes: config.database.maxBytes, mode: 'tool' });
  return Promise.resolve(fn(store, config)).finally(() => store.db.close());
}
