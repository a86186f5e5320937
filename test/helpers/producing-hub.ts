/**
 * A real hub process that sells stock on a timer: `node --import tsx producing-hub.ts CONFIG RATE`.
 * Tests kill it with SIGKILL mid-sync and start it again. Prints "producing" once the hub is up and
 * "sold N" as it goes, each line after the sales it names are committed.
 */
import { loadConfigFile } from '../../hub/config/load.js';
import { Hub } from '../../hub/hub.js';
import { createLogger } from '../../hub/observability/logger.js';

const [file, rateArg] = process.argv.slice(2);
if (!file) throw new Error('usage: producing-hub.ts CONFIG [SALES_PER_TICK]');
const perTick = Number(rateArg ?? '20');
const { config } = loadConfigFile(file);
const hub = new Hub(config, { log: createLogger({ level: 'warn', pretty: false }) });
await hub.start();
console.log('producing');
let sold = 0;
if (perTick > 0) {
  setInterval(() => {
    const ledger = hub.inventory?.ledger;
    if (!ledger) return;
    for (let i = 0; i < perTick; i++, sold++) ledger.applyDelta(`SKU-${sold % 11}`, 'salesfloor', sold % 5 === 0 ? 5 : -1, 'sale', 'pos', Date.now());
    console.log(`sold ${sold}`);
  }, 10);
}
process.on('SIGTERM', () => {
  void hub.stop().then(() => process.exit(0));
});
