/**
 * The hub's V8 flags are given in four places: the systemd unit, `npm start`, the storehub bin's
 * shebang and the benchmarks (which must measure the hub as it runs). They must agree.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { HUB_NODE_FLAGS } from '../bench/processes.js';

const root = join(import.meta.dirname, '..');
const read = (file: string) => readFileSync(join(root, file), 'utf8');

t.test('systemd, npm start, the bin and the benchmarks launch node with the same flags', async (t) => {
  const flags = HUB_NODE_FLAGS.join(' ');
  t.ok(flags.length > 0);
  const execStart = /^ExecStart=\/usr\/bin\/node (.*) \/opt\/storehub\/dist\/hub\/cli\/main\.js start/m.exec(read('systemd/storehub.service'));
  t.equal(execStart?.[1], flags, 'systemd/storehub.service');
  const start = (JSON.parse(read('package.json')) as { scripts: Record<string, string> }).scripts.start;
  t.equal(start, `node ${flags} dist/hub/cli/main.js start`, 'npm start');
  t.equal(read('hub/cli/main.ts').split('\n')[0], `#!/usr/bin/env -S node ${flags}`, 'the bin');
});
