import { SimulationService } from '../simulation/simulation-service.js';
import { createLogger } from '../observability/logger.js';
import { Store } from '../store/store.js';
import { loadConfigOrExit } from './open-tool-store.js';

/**
 * `storehub sim [--config FILE]`: simulators for the devices in FILE, beside a running hub (or one
 * started later): readers connect to the hub's broker with fresh credentials; shelves appear as
 * pseudo-terminals linked at their configured port paths. Runs until SIGINT/SIGTERM.
 */
export async function simCommand(opts: { config: string }): Promise<void> {
  const config = loadConfigOrExit(opts.config);
  const log = createLogger({ level: config.log.level });
  const store = new Store({ dataDir: config.dataDir, synchronous: 'full', maxBytes: config.database.maxBytes, mode: 'tool' });
  const host = config.broker.host === '0.0.0.0' ? '127.0.0.1' : config.broker.host;
  const sim = new SimulationService({
    devices: config.devices,
    credentials: () => store.credentials,
    brokerUrl: () => `mqtt://${host}:${config.broker.port}`,
    log,
    mode: 'beside',
  });
  await sim.start();
  store.db.close();
  if (sim.simulators.length === 0) {
    log.warn('no device in this config has a simulator');
    return;
  }
  log.info({ simulators: sim.simulators.map((s) => `${s.deviceId} (${s.kind})`) }, 'simulating; Ctrl-C stops');
  const stop = () => {
    void sim.stop().then(() => process.exit(0));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}
