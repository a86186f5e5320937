import { readFileSync } from 'node:fs';
import { DRIVER_FACTORIES } from '../../drivers/index.js';
import { formatProblem, parseConfigText } from '../config/load.js';
import { validateDevices } from '../devices/device-service.js';

/** `storehub check-config FILE`: exit 0 when valid, 2 with one line per problem otherwise. */
export function checkConfigCommand(file: string): void {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    process.stderr.write(`${file}: cannot read: ${(err as Error).message}\n`);
    process.exit(2);
  }
  const { loaded, problems } = parseConfigText(text, file);
  if (!loaded) {
    for (const p of problems) process.stderr.write(`${formatProblem(p, file)}\n`);
    process.exit(2);
  }
  // The schema checks shapes; each device's options are checked by its driver.
  const deviceProblems = validateDevices(loaded.config.devices, DRIVER_FACTORIES);
  if (deviceProblems.length > 0) {
    for (const p of deviceProblems) process.stderr.write(`${p} (${file})\n`);
    process.exit(2);
  }
  for (const m of loaded.migrations) process.stdout.write(`note: the file uses an older format (${m}); it loads, but update it\n`);
  const c = loaded.config;
  process.stdout.write(`ok: ${file} (store ${c.store.id}, ${c.devices.length} devices, ${c.cameras.length} cameras)\n`);
}
