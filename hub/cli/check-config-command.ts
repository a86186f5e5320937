import { readFileSync } from 'node:fs';
import { DRIVER_FACTORIES } from '../../drivers/index.js';
import type { HubConfig } from '../config/schema.js';
import { formatProblem, lineOfPath, parseConfigText } from '../config/load.js';
import { validateDevices } from '../devices/device-service.js';

/**
 * The drivers' checks of each device's options (the schema checks shapes only), one line per
 * problem with its line in the file, as check-config prints schema problems. Shared with start.
 */
export function deviceProblemLines(devices: HubConfig['devices'], file: string, text: string, indexes?: number[]): string[] {
  return validateDevices(devices, DRIVER_FACTORIES).map((found) => {
    // checked a subset (the file failed the schema elsewhere): name each device by its index in the file
    const problem = indexes ? found.replace(/^devices\[(\d+)\]/, (_, i: string) => `devices[${indexes[Number(i)]}]`) : found;
    const colon = problem.indexOf(': ');
    const path = colon > 0 ? problem.slice(0, colon) : problem;
    const message = colon > 0 ? problem.slice(colon + 2) : problem;
    const line = lineOfPath(text, path);
    return formatProblem({ path, message, ...(line !== undefined ? { line } : {}) }, file);
  });
}

/** `storehub check-config FILE`: exit 0 when valid, 2 with one line per problem otherwise. */
export function checkConfigCommand(file: string): void {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    process.stderr.write(`${file}: cannot read: ${(err as Error).message}\n`);
    process.exit(2);
  }
  const { loaded, problems, shapeValidDevices = [] } = parseConfigText(text, file);
  if (!loaded) {
    for (const p of problems) process.stderr.write(`${formatProblem(p, file)}\n`);
    // the devices whose entries passed the schema still get their drivers' checks in this run
    const devices = shapeValidDevices.map((d) => d.device);
    const lines = deviceProblemLines(
      devices,
      file,
      text,
      shapeValidDevices.map((d) => d.index),
    );
    for (const line of lines) process.stderr.write(`${line}\n`);
    process.exit(2);
  }
  // The schema checks shapes; each device's options are checked by its driver.
  const deviceProblems = deviceProblemLines(loaded.config.devices, file, text);
  if (deviceProblems.length > 0) {
    for (const line of deviceProblems) process.stderr.write(`${line}\n`);
    process.exit(2);
  }
  for (const m of loaded.migrations) process.stdout.write(`note: the file uses an older format (${m}); it loads, but update it\n`);
  const c = loaded.config;
  process.stdout.write(`ok: ${file} (store ${c.store.id}, ${c.devices.length} devices, ${c.cameras.length} cameras)\n`);
}
