import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { runCli } from './helpers/hub-process.js';

const ROOT = join(import.meta.dirname ?? '', '..');

t.test('check-config accepts the demo store and every example, drivers included', async (t) => {
  const files = [join(ROOT, 'config/demo-store.yaml'), ...readdirSync(join(ROOT, 'config/examples')).map((f) => join(ROOT, 'config/examples', f))];
  for (const file of files) {
    const r = runCli(['check-config', file]);
    t.equal(r.status, 0, `${file}: ${r.stderr}`);
    t.match(r.stdout, /^ok: /);
  }
});

t.test('check-config exits 2 with one line per problem, schema and driver options alike, in one run', async (t) => {
  const file = join(t.testdir(), 'bad.yaml');
  writeFileSync(
    file,
    [
      'version: 1',
      'store: { id: s1 }',
      'api: { port: 99999, colour: red }',
      'devices:',
      '  - id: reader-1',
      '    kind: rfid-reader',
      '    transport: { type: mqtt, speed: fast }',
      '  - id: shelf-1',
      '    kind: smart-shelf',
      '    transport: { type: serial, path: /dev/ttyUSB0 }',
      '    options: { unitId: 0, model: ws-4lane-int32, lanes: [] }',
      '',
    ].join('\n'),
  );
  const r = runCli(['check-config', file]);
  t.equal(r.status, 2);
  const lines = r.stderr.trim().split('\n');
  t.match(lines[0], /^api\.colour: unknown key \(.*bad\.yaml:3\)$/);
  t.match(lines[1], /^api\.port: must be <= 65535 \(.*bad\.yaml:3\)$/);
  t.ok(
    lines.some((l) => /^devices\[0\]\.transport/.test(l)),
    'the device entry that fails the schema is named',
  );
  t.match(
    r.stderr,
    /^devices\[1\]\.options: .*unitId.* \(.*bad\.yaml:11\)$/m,
    'the driver checks the device whose entry passed the schema, in the same run, under its index in the file',
  );
  t.notOk(
    lines.some((l) => /^devices\[0\]\.options/.test(l)),
    'the broken entry gets no driver check',
  );
  const fixed = join(t.testdir(), 'fixed.yaml');
  writeFileSync(
    fixed,
    [
      'version: 1',
      'store: { id: s1 }',
      'devices:',
      '  - id: shelf-1',
      '    kind: smart-shelf',
      '    transport: { type: serial, path: /dev/ttyUSB0 }',
      '    options: { unitId: 0, model: ws-4lane-int32, lanes: [] }',
      '',
    ].join('\n'),
  );
  const driver = runCli(['check-config', fixed]);
  t.equal(driver.status, 2, 'driver options are checked when the schema passes');
  t.match(driver.stderr, /^devices\[0\]\.options: .*unitId.* \(.*fixed\.yaml:7\)$/m, 'with the line of the options');
  t.equal(runCli(['check-config', join(t.testdir(), 'missing.yaml')]).status, 2);
});
