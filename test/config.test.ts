/**
 * The config layer: YAML -> migrate -> defaults -> validate, the problems it reports (path, message,
 * line), the generated JSON schema, the shipped configs and the reference in docs/configuration.md.
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv } from 'ajv';
import fc from 'fast-check';
import t from 'tap';
import { isMap, isScalar, LineCounter, parseDocument, stringify } from 'yaml';
import { type ConfigProblem, formatProblem, loadConfigFile, parseConfigText } from '../hub/config/load.js';
import { CONFIG_MIGRATIONS } from '../hub/config/migrations.js';
import { CONFIG_VERSION, ConfigSchema } from '../hub/config/schema.js';
import { HubError, isHubError } from '../hub/sdk/errors.js';
import { main as genSchema, renderSchema, SCHEMA_PATH } from '../scripts/gen-schema.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const DEMO = join(ROOT, 'config/demo-store.yaml');
const EXAMPLES = join(ROOT, 'config/examples');

/** 1-based line of the first line containing `needle` (the test's own idea of where a key is). */
function lineOf(text: string, needle: string): number {
  const i = text.split('\n').findIndex((l) => l.includes(needle));
  if (i < 0) throw new Error(`test bug: ${needle} not in text`);
  return i + 1;
}

function problemsOf(text: string): ConfigProblem[] {
  const { loaded, problems } = parseConfigText(text, 'test.yaml');
  if (problems.length === 0 && !loaded) throw new Error('neither loaded nor problems');
  return problems;
}

function caught(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  throw new Error('expected a throw');
}

const MINIMAL = 'version: 1\nstore:\n  id: s1\n';

/** The cloud section a file without one gets. */
const DEFAULT_CLOUD = {
  enabled: false,
  tls: {},
  sessionExpirySeconds: 604800,
  keepaliveSeconds: 30,
  batchSize: 500,
  window: 8,
  ackTimeoutSeconds: 30,
  replayRecordsPerSecond: 50000,
  telemetryIntervalSeconds: 60,
  streams: { ledger: { maxBytes: 268435456 }, events: { maxBytes: 134217728 }, footfall: { maxBytes: 33554432 }, telemetry: { maxBytes: 16777216 } },
  oms: { enabled: false, batchSize: 500, timeoutSeconds: 10 },
};

t.test('the demo config loads with no problems and is filled with defaults', async (t) => {
  const { loaded, problems } = parseConfigText(readFileSync(DEMO, 'utf8'), DEMO);
  t.same(problems, []);
  if (!loaded) return t.fail('not loaded');
  const c = loaded.config;
  t.same(loaded.migrations, []);
  t.equal(c.version, CONFIG_VERSION);
  t.equal(c.store.id, 'demo-001');
  t.equal(c.api.host, '127.0.0.1');
  t.equal(c.api.port, 8080);
  t.equal(c.api.bodyLimitBytes, 1024 * 1024, 'api default filled');
  t.equal(c.broker.port, 1883);
  t.strictSame(c.broker.limits, {
    maxClients: 5000,
    maxPacketBytes: 262144,
    messagesPerSecond: 2000,
    messageBurst: 4000,
    connectsPerSecond: 200,
    connectBurst: 400,
    maxPendingAuth: 32,
    drainTimeoutMs: 10000,
    connectTimeoutMs: 10000,
  });
  t.equal(c.broker.tls, undefined, 'optional sections stay absent');
  t.equal(c.broker.websocket, undefined);
  t.equal(c.database.synchronous, 'full');
  t.equal(c.database.maxBytes, 1073741824, 'value from the file wins over the default');
  t.equal(c.database.ingestRetentionHours, 72);
  t.same(
    c.devices.map((d) => [d.id, d.kind, d.transport.type]),
    [
      ['reader-1', 'rfid-reader', 'mqtt'],
      ['reader-2', 'rfid-reader', 'mqtt'],
      ['shelf-1', 'smart-shelf', 'serial'],
    ],
  );
  t.same(c.cameras, []);
  t.same(c.cloud, { ...DEFAULT_CLOUD, oms: { ...DEFAULT_CLOUD.oms, enabled: true, url: 'http://127.0.0.1:8081', token: 'demo-oms-token' } });
  t.same(c.simulation, { enabled: true, cloudReceiver: true }, 'the demo store simulates its devices and its OMS');

  const fromFile = loadConfigFile(DEMO);
  t.equal(fromFile.config.dataDir, resolve(ROOT, 'data/demo-001'), 'dataDir resolved against config/');
  t.equal(fromFile.source, DEMO);
});

t.test('a minimal file gets every section from defaults', async (t) => {
  const { loaded, problems } = parseConfigText(MINIMAL);
  t.same(problems, []);
  t.strictSame(loaded?.config, {
    version: 1,
    store: { id: 's1', timezone: 'UTC' },
    dataDir: './data',
    log: { level: 'info' },
    api: { host: '127.0.0.1', port: 8080, bodyLimitBytes: 1048576 },
    broker: {
      host: '0.0.0.0',
      port: 1883,
      limits: {
        maxClients: 5000,
        maxPacketBytes: 262144,
        messagesPerSecond: 2000,
        messageBurst: 4000,
        connectsPerSecond: 200,
        connectBurst: 400,
        maxPendingAuth: 32,
        drainTimeoutMs: 10000,
        connectTimeoutMs: 10000,
      },
    },
    database: { synchronous: 'full', maxBytes: 2147483648, ingestRetentionHours: 72 },
    devices: [],
    cameras: [],
    cloud: DEFAULT_CLOUD,
    ops: { firmwareKeys: [], defaultJobTimeoutSeconds: 3600 },
    simulation: { enabled: false, cloudReceiver: false },
  });
  t.same(
    parseConfigText(`${MINIMAL}devices:\n  - id: sh1\n    kind: smart-shelf\n    transport: {type: serial, path: /dev/ttyUSB0}\n`).loaded?.config.devices[0],
    {
      id: 'sh1',
      kind: 'smart-shelf',
      transport: { type: 'serial', path: '/dev/ttyUSB0', baudRate: 9600, dataBits: 8, parity: 'none', stopBits: 1 },
      options: {},
    },
    'defaults reach into the chosen transport branch',
  );
});

t.test('config/schema.json is what scripts/gen-schema.ts renders (run npm run gen:schema)', async (t) => {
  const onDisk = readFileSync(SCHEMA_PATH, 'utf8');
  t.equal(onDisk, renderSchema(), 'config/schema.json is stale: run npm run gen:schema');
  const schema = JSON.parse(onDisk) as Record<string, unknown>;
  t.match(schema.$comment, /npm run gen:schema/);
  t.match(schema.$comment, /Do not edit/);
  t.ok(onDisk.endsWith('}\n'));
  t.ok(onDisk.startsWith('{\n  "'), '2-space indent');

  const lines: string[] = [];
  const report = (l: string) => lines.push(l);
  t.equal(genSchema(['--check'], report), 0, 'gen-schema --check passes on the committed file');
  const dir = t.testdir({ 'stale.json': '{}\n' });
  const out = join(dir, 'schema.json');
  t.equal(genSchema(['--check', '--out', out], report), 1, '--check fails when the file is missing');
  t.equal(genSchema(['--check', '--out', join(dir, 'stale.json')], report), 1, '--check fails when the file is stale');
  t.equal(genSchema(['--out', out], report), 0);
  t.equal(readFileSync(out, 'utf8'), onDisk, 'writing renders the same text');
  t.equal(genSchema(['--check', '--out', out], report), 0);
  t.match(lines, [/out of date: run npm run gen:schema/, /out of date/, /^wrote /]);
});

t.test('the published schema accepts the shipped files as written and rejects unknown keys', async (t) => {
  // Editors check the file as typed, before the loader fills defaults.
  const validate = new Ajv({ allErrors: true, strict: false }).compile(JSON.parse(readFileSync(SCHEMA_PATH, 'utf8')));
  const asWritten = (file: string) => parseDocument(readFileSync(file, 'utf8')).toJS() as unknown;
  for (const file of [DEMO, ...readdirSync(EXAMPLES).map((f) => join(EXAMPLES, f))]) {
    t.ok(validate(asWritten(file)), `${file}: ${JSON.stringify(validate.errors)}`);
  }
  t.ok(validate({ version: 1, store: { id: 's1' } }), 'sections with defaults may be left out');
  t.notOk(validate({ version: 1, store: { id: 's1' }, api: { prot: 1 } }));
  t.notOk(validate({ store: { id: 's1' } }), 'version is required');
});

t.test('every file in config/examples/ validates', async (t) => {
  const files = readdirSync(EXAMPLES).filter((f) => /\.ya?ml$/.test(f));
  t.ok(files.includes('store-with-tls.yaml'));
  for (const f of files) {
    const file = join(EXAMPLES, f);
    const { loaded, problems } = parseConfigText(readFileSync(file, 'utf8'), file);
    t.same(
      problems.map((p) => formatProblem(p, file)),
      [],
      f,
    );
    t.same(loaded?.migrations, [], `${f} is current`);
    t.doesNotThrow(() => loadConfigFile(file));
  }
  const tls = loadConfigFile(join(EXAMPLES, 'store-with-tls.yaml')).config;
  t.equal(tls.broker.host, '0.0.0.0');
  t.match(tls.broker.tls, { port: Number, cert: /^\/etc\/storehub\/tls\//, key: /^\/etc\/storehub\/tls\// });
  t.ok(tls.broker.websocket);
  t.equal(tls.api.host, '0.0.0.0');
  t.match(tls.api.tls, { cert: /^\/etc\/storehub\/tls\//, key: /^\/etc\/storehub\/tls\// }, 'an API open to the store network is served over HTTPS');
  t.equal(tls.database.synchronous, 'full');
  t.equal(tls.database.maxBytes, 4 * 1024 ** 3);
  t.same(
    tls.devices.map((d) => [d.kind, d.transport.type]),
    [
      ['rfid-reader', 'mqtt'],
      ['smart-shelf', 'serial'],
      ['barcode-scanner', 'hid'],
    ],
  );
  t.match(tls.devices[1]?.transport, { path: '/dev/storehub/rs485-A' });
  t.equal(tls.cameras.length, 1);
  t.match(tls.cloud, { enabled: true, url: /^mqtts:\/\//, username: String, password: String });
});

t.test('unknown keys are rejected at any depth, naming the key path and its line', async (t) => {
  const text = `version: 1
store:
  id: s1
broker:
  tls:
    port: 8883
    cert: /c
    key: /k
  websocket:
    port: 8083
  limits:
    maxClients: 10
devices:
  - id: r1
    kind: rfid-reader
    transport:
      type: mqtt
  - id: sh1
    kind: smart-shelf
    transport:
      type: serial
      path: /dev/ttyUSB0
  - id: sc1
    kind: barcode-scanner
    transport:
      type: hid
      vendorId: 1
      productId: 2
cameras:
  - id: c1
    source: /dev/video0
`;
  t.same(problemsOf(text), [], 'the base text is valid');
  // insert `bogusKey: 1` after the line `after`, at `indent`
  const cases: [after: string, indent: string, path: string][] = [
    ['version: 1', '', 'bogusKey'],
    ['  id: s1', '  ', 'store.bogusKey'],
    ['    key: /k', '    ', 'broker.tls.bogusKey'],
    ['    port: 8083', '    ', 'broker.websocket.bogusKey'],
    ['    maxClients: 10', '    ', 'broker.limits.bogusKey'],
    ['    kind: rfid-reader', '    ', 'devices[0].bogusKey'],
    ['      type: mqtt', '      ', 'devices[0].transport.bogusKey'],
    ['      path: /dev/ttyUSB0', '      ', 'devices[1].transport.bogusKey'],
    ['      productId: 2', '      ', 'devices[2].transport.bogusKey'],
    ['    source: /dev/video0', '    ', 'cameras[0].bogusKey'],
  ];
  for (const [after, indent, path] of cases) {
    const bad = text.replace(`${after}\n`, `${after}\n${indent}bogusKey: 1\n`);
    t.same(problemsOf(bad), [{ path, line: lineOf(bad, 'bogusKey'), message: 'unknown key' }], path);
  }
  for (const section of ['log', 'api', 'database', 'cloud']) {
    const bad = `${MINIMAL}${section}:\n  bogusKey: true\n`;
    t.same(problemsOf(bad), [{ path: `${section}.bogusKey`, line: 5, message: 'unknown key' }], section);
  }
  const two = `${MINIMAL}api:\n  prot: 80\nbroker:\n  limits:\n    maxClient: 5\n`;
  t.same(
    problemsOf(two).map((p) => formatProblem(p, 'store.yaml')),
    ['api.prot: unknown key (store.yaml:5)', 'broker.limits.maxClient: unknown key (store.yaml:8)'],
    'every unknown key is reported, not only the first',
  );
  t.same(
    problemsOf(`${MINIMAL}devices:\n  - id: r1\n    kind: rfid-reader\n    transport: {type: mqtt}\n    options: {anything: {goes: [1]}}\n`),
    [],
    'device options are open: the driver validates them',
  );
});

t.test('wrong values are reported one line each, naming the path and line', async (t) => {
  const cases: { name: string; yaml: string; path: string; at: string; message: RegExp }[] = [
    { name: 'string port', yaml: `${MINIMAL}api:\n  port: "eighty"\n`, path: 'api.port', at: 'eighty', message: /integer/ },
    { name: 'float port', yaml: `${MINIMAL}broker:\n  port: 1883.5\n`, path: 'broker.port', at: '1883.5', message: /integer/ },
    { name: 'port too big', yaml: `${MINIMAL}api:\n  port: 65536\n`, path: 'api.port', at: '65536', message: /<= 65535/ },
    { name: 'negative port', yaml: `${MINIMAL}broker:\n  port: -1\n`, path: 'broker.port', at: '-1', message: />= 0/ },
    { name: 'tls port', yaml: `${MINIMAL}broker:\n  tls: {port: 99999, cert: /c, key: /k}\n`, path: 'broker.tls.port', at: '99999', message: /<= 65535/ },
    { name: 'ws port', yaml: `${MINIMAL}broker:\n  websocket:\n    port: 70000\n`, path: 'broker.websocket.port', at: '70000', message: /<= 65535/ },
    { name: 'store id with space', yaml: 'version: 1\nstore:\n  id: "my store"\n', path: 'store.id', at: 'my store', message: /pattern/ },
    { name: 'store id numeric', yaml: 'version: 1\nstore:\n  id: 42\n', path: 'store.id', at: '42', message: /string/ },
    { name: 'store id too long', yaml: `version: 1\nstore:\n  id: ${'a'.repeat(65)}\n`, path: 'store.id', at: 'aaaa', message: /pattern/ },
    { name: 'hubId leading dash', yaml: `${MINIMAL}hubId: -edge\n`, path: 'hubId', at: '-edge', message: /pattern/ },
    {
      name: 'device id',
      yaml: `${MINIMAL}devices:\n  - id: "a/b"\n    kind: rfid-reader\n    transport: {type: mqtt}\n`,
      path: 'devices[0].id',
      at: 'a/b',
      message: /pattern/,
    },
    {
      name: 'device kind',
      yaml: `${MINIMAL}devices:\n  - id: a\n    kind: RFID\n    transport: {type: mqtt}\n`,
      path: 'devices[0].kind',
      at: 'RFID',
      message: /pattern/,
    },
    { name: 'camera id', yaml: `${MINIMAL}cameras:\n  - id: "cam 1"\n    source: x\n`, path: 'cameras[0].id', at: 'cam 1', message: /pattern/ },
    { name: 'camera fps', yaml: `${MINIMAL}cameras:\n  - id: c\n    source: x\n    fps: 0\n`, path: 'cameras[0].fps', at: 'fps', message: /> 0/ },
    {
      name: 'log level',
      yaml: `${MINIMAL}log:\n  level: verbose\n`,
      path: 'log.level',
      at: 'verbose',
      message: /must be one of "fatal", "error", "warn", "info", "debug", "trace"/,
    },
    {
      name: 'synchronous',
      yaml: `${MINIMAL}database:\n  synchronous: "off"\n`,
      path: 'database.synchronous',
      at: 'off',
      message: /must be one of "full", "normal"/,
    },
    { name: 'maxBytes', yaml: `${MINIMAL}database:\n  maxBytes: 1000\n`, path: 'database.maxBytes', at: '1000', message: />= 1048576/ },
    { name: 'cloud url', yaml: `${MINIMAL}cloud:\n  url: https://oms.example.com\n`, path: 'cloud.url', at: 'https', message: /pattern/ },
    { name: 'cloud enabled', yaml: `${MINIMAL}cloud:\n  enabled: "yes"\n`, path: 'cloud.enabled', at: 'yes', message: /boolean/ },
    { name: 'section not a map', yaml: `${MINIMAL}api: 8080\n`, path: 'api', at: 'api', message: /object/ },
    { name: 'devices a mapping (a forgotten -)', yaml: `${MINIMAL}devices:\n  id: a\n`, path: 'devices', at: 'id: a', message: /array/ },
    { name: 'cameras a mapping', yaml: `${MINIMAL}cameras: {}\n`, path: 'cameras', at: 'cameras', message: /array/ },
    {
      name: 'options a list',
      yaml: `${MINIMAL}devices:\n  - id: a\n    kind: rfid-reader\n    transport: {type: mqtt}\n    options: [1, 2]\n`,
      path: 'devices[0].options',
      at: 'options',
      message: /object/,
    },
    { name: 'missing store', yaml: 'version: 1\ndataDir: /d\n', path: 'store', at: 'version', message: /required/ },
    { name: 'missing store.id', yaml: 'version: 1\nstore:\n  name: x\n', path: 'store.id', at: 'name', message: /required/ },
    {
      name: 'unknown transport type',
      yaml: `${MINIMAL}devices:\n  - id: r1\n    kind: rfid-reader\n    transport:\n      type: mqtt\n  - id: sh1\n    kind: smart-shelf\n    transport:\n      type: usb\n      path: /dev/x\n`,
      path: 'devices[1].transport.type',
      at: 'usb',
      message: /must be one of "mqtt", "serial", "hid"/,
    },
    {
      name: 'hid vendorId',
      yaml: `${MINIMAL}devices:\n  - id: sc\n    kind: barcode-scanner\n    transport:\n      type: hid\n      vendorId: 0x10000\n      productId: 1\n`,
      path: 'devices[0].transport.vendorId',
      at: '0x10000',
      message: /<= 65535/,
    },
    {
      name: 'serial without path',
      yaml: `${MINIMAL}devices:\n  - id: sh\n    kind: smart-shelf\n    transport:\n      type: serial\n`,
      path: 'devices[0].transport.path',
      at: 'type: serial', // a missing key is reported where its object starts
      message: /required/,
    },
  ];
  for (const c of cases) {
    const problems = problemsOf(c.yaml);
    t.equal(problems.length, 1, `${c.name}: one problem, got ${JSON.stringify(problems)}`);
    t.match(problems[0], { path: c.path, line: lineOf(c.yaml, c.at), message: c.message }, c.name);
  }
});

t.test('a problem behind a YAML alias is reported at the alias', async (t) => {
  const yaml = `${MINIMAL}devices:
  - id: sh1
    kind: smart-shelf
    transport: &rs485 {type: serial, path: /dev/storehub/rs485-A, parity: mark}
  - id: sh2
    kind: smart-shelf
    transport: *rs485
`;
  t.same(problemsOf(yaml), [
    { path: 'devices[0].transport.parity', line: lineOf(yaml, '&rs485'), message: 'must be one of "none", "even", "odd"' },
    { path: 'devices[1].transport.parity', line: lineOf(yaml, '*rs485'), message: 'must be one of "none", "even", "odd"' },
  ]);
});

t.test('a serial transport with one bad field reports only that field', async (t) => {
  const head = `${MINIMAL}devices:\n  - id: sh1\n    kind: smart-shelf\n    transport:\n      type: serial\n      path: /dev/storehub/rs485-A\n`;
  for (const [field, value, message] of [
    ['baudRate', '10', />= 50/],
    ['baudRate', 'fast', /integer/],
    ['dataBits', '9', /must be one of 7, 8/],
    ['parity', 'mark', /must be one of "none", "even", "odd"/],
    ['stopBits', '3', /must be one of 1, 2/],
  ] as const) {
    const yaml = `${head}      ${field}: ${value}\n`;
    const problems = problemsOf(yaml);
    t.equal(problems.length, 1, `${field}: ${value} -> ${JSON.stringify(problems)}`);
    t.match(problems[0], { path: `devices[0].transport.${field}`, line: lineOf(yaml, `${field}:`), message }, `${field}: ${value}`);
  }
  const two = `${head}      parity: mark\n      stopBits: 3\n      baudRate: 9600\n`;
  t.same(
    problemsOf(two).map((p) => p.path),
    ['devices[0].transport.parity', 'devices[0].transport.stopBits'],
    'two bad fields: two lines, the good sibling is not mentioned',
  );
});

t.test('YAML syntax errors are reported with a line', async (t) => {
  const cases: [name: string, yaml: string, line: number][] = [
    ['tab indentation', 'version: 1\nstore:\n\tid: s1\n', 3],
    ['duplicate key', 'version: 1\nstore:\n  id: s1\nversion: 1\n', 4],
    ['unclosed flow sequence', 'version: 1\nstore:\n  id: s1\n  name: [unclosed\napi:\n  port: 1\n', 4],
    ['bad indentation', 'version: 1\nstore:\n  id: s1\n name: x\n', 4],
  ];
  for (const [name, yaml, line] of cases) {
    const { loaded, problems } = parseConfigText(yaml, 'f.yaml');
    t.equal(loaded, undefined, name);
    t.ok(problems.length >= 1, name);
    t.match(problems[0], { path: '(yaml)', line: Number, message: /\S/ }, name);
    // The parser may notice a problem a line or two after it starts; it must not point before it.
    const at = problems[0]?.line ?? 0;
    t.ok(at >= line && at <= line + 2, `${name}: reported at line ${at}, expected about ${line}`);
    t.match(formatProblem(problems[0] as ConfigProblem, 'f.yaml'), /^\(yaml\): .+ \(f\.yaml:\d+\)$/, name);
  }
});

t.test('a document that is not a mapping is one problem at the root', async (t) => {
  for (const [name, yaml] of [
    ['list', '- version: 1\n- store: {}\n'],
    ['scalar', 'storehub\n'],
    ['empty file', ''],
    ['null', '~\n'],
  ]) {
    t.same(problemsOf(yaml as string), [{ path: '(root)', line: 1, message: 'must be a mapping of keys to values' }], name as string);
  }
});

t.test('versions', async (t) => {
  const newer = `# a comment\nversion: ${CONFIG_VERSION + 1}\nstore:\n  id: s1\n`;
  const [p, ...rest] = problemsOf(newer);
  t.same(rest, []);
  t.match(p, { path: 'version', line: 2, message: /newer than this storehub understands.*upgrade storehub/ });

  t.match(problemsOf('version: -1\nstore:\n  id: s1\n'), [{ path: 'version', line: 1, message: /non-negative integer/ }]);
  t.match(problemsOf('version: "1"\nstore:\n  id: s1\n'), [{ path: 'version', line: 1, message: /non-negative integer/ }]);
  t.match(problemsOf('version: 0.5\nstore:\n  id: s1\n'), [{ path: 'version', line: 1, message: /non-negative integer/ }]);
  t.equal(CONFIG_MIGRATIONS.length, CONFIG_VERSION, 'one migration per version step');
});

t.test('a version-0 file is migrated, loads, and reports the migration', async (t) => {
  const v0 = `# preview format: no version key
storeId: s0
dataDir: ./state
http:
  host: 0.0.0.0
  port: 9090
mqtt:
  port: 1884
  limits:
    maxClients: 50
`;
  const { loaded, problems } = parseConfigText(v0, 'old.yaml');
  t.same(problems, []);
  if (!loaded) return t.fail('not loaded');
  t.equal(loaded.config.version, 1);
  t.equal(loaded.config.store.id, 's0');
  t.match(loaded.config.api, { host: '0.0.0.0', port: 9090, bodyLimitBytes: 1048576 });
  t.match(loaded.config.broker, { port: 1884, host: '0.0.0.0', limits: { maxClients: 50, maxPacketBytes: 262144 } });
  t.equal(loaded.migrations.length, 1);
  t.match(loaded.migrations[0], /version 0 -> 1/);
  t.match(loaded.migrations[0], /storeId -> store\.id/);
  t.notOk('storeId' in loaded.config || 'http' in loaded.config || 'mqtt' in loaded.config);

  const explicit = parseConfigText('version: 0\nstoreId: s0\nstore:\n  name: Old\n');
  t.match(explicit.loaded?.config.store, { id: 's0', name: 'Old' }, 'explicit version 0; storeId merges into an existing store');
  t.equal(explicit.loaded?.migrations.length, 1);

  const dir = t.testdir();
  const file = join(dir, 'old.yaml');
  writeFileSync(file, v0);
  const fromFile = loadConfigFile(file);
  t.equal(fromFile.migrations.length, 1, 'loadConfigFile reports the migration too');
  t.equal(fromFile.config.dataDir, join(dir, 'state'));

  // a version-0 file with a problem after migration is still reported under the new path
  const bad = parseConfigText('storeId: s0\nhttp:\n  port: 99999\n');
  t.match(bad.problems, [{ path: 'api.port', message: /<= 65535/ }]);
});

t.test('loadConfigFile resolves a relative dataDir against the file, not the cwd', async (t) => {
  const dir = t.testdir();
  const write = (name: string, body: string) => {
    const file = join(dir, name);
    writeFileSync(file, body);
    return file;
  };
  t.equal(loadConfigFile(write('a.yaml', `${MINIMAL}dataDir: ../data/x\n`)).config.dataDir, resolve(dir, '../data/x'));
  t.equal(loadConfigFile(write('b.yaml', MINIMAL)).config.dataDir, join(dir, 'data'), 'the default ./data too');
  t.equal(loadConfigFile(write('c.yaml', `${MINIMAL}dataDir: /var/lib/storehub\n`)).config.dataDir, '/var/lib/storehub', 'absolute kept');
  t.equal(parseConfigText(`${MINIMAL}dataDir: ../x\n`).loaded?.config.dataDir, '../x', 'parseConfigText leaves it as written');
});

t.test('loadConfigFile errors', async (t) => {
  const dir = t.testdir();
  const missing = join(dir, 'nope.yaml');
  const unreadable = caught(() => loadConfigFile(missing));
  t.ok(isHubError(unreadable, 'HUB_ERR_CONFIG_UNREADABLE'), 'a missing file is unreadable');
  t.match((unreadable as Error).message, missing);
  t.ok(
    isHubError(
      caught(() => loadConfigFile(dir)),
      'HUB_ERR_CONFIG_UNREADABLE',
    ),
    'a directory is unreadable',
  );

  const file = join(dir, 'bad.yaml');
  writeFileSync(file, `${MINIMAL}api:\n  port: 70000\nlog:\n  level: loud\n`);
  const err = caught(() => loadConfigFile(file));
  t.ok(err instanceof HubError);
  const hubErr = err as HubError;
  t.equal(hubErr.code, 'HUB_ERR_CONFIG_INVALID');
  t.match(hubErr.context.problems, [
    { path: 'api.port', line: 5, message: /65535/ },
    { path: 'log.level', line: 7, message: /must be one of/ },
  ]);
  t.equal((hubErr.context.problems as unknown[]).length, 2);
  t.match(hubErr.message, `api.port: must be <= 65535 (${file}:5)`);

  const yamlBad = join(dir, 'syntax.yaml');
  writeFileSync(yamlBad, 'version: 1\nstore:\n\tid: s1\n');
  const syntax = caught(() => loadConfigFile(yamlBad));
  t.ok(isHubError(syntax, 'HUB_ERR_CONFIG_INVALID'), 'a YAML syntax error is an invalid config');
  t.match((syntax as HubError).context.problems, [{ path: '(yaml)', line: 3 }]);
});

t.test('formatProblem', async (t) => {
  t.equal(formatProblem({ path: 'api.port', line: 12, message: 'must be <= 65535' }, 'store.yaml'), 'api.port: must be <= 65535 (store.yaml:12)');
  t.equal(formatProblem({ path: 'api.port', line: 12, message: 'must be <= 65535' }), 'api.port: must be <= 65535 (line 12)');
  t.equal(formatProblem({ path: 'store', message: 'is required' }, 'store.yaml'), 'store: is required');
});

// ---- property tests --------------------------------------------------------------------------

const idArb = fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/);
const portArb = fc.integer({ min: 0, max: 65535 });

/** A full, valid config as a plain object: every closed object present, so keys can go anywhere. */
function fullConfig(ids: string[], ports: number[]): Record<string, unknown> {
  const [storeId = 's', hubId = 'h', d1 = 'd1', d2 = 'd2', d3 = 'd3', cam = 'c'] = ids;
  const [api = 1, broker = 2, tls = 3, ws = 4] = ports;
  return {
    version: 1,
    store: { id: storeId, name: 'Store', timezone: 'UTC' },
    hubId,
    dataDir: '/var/lib/storehub',
    log: { level: 'debug' },
    api: { host: '0.0.0.0', port: api },
    broker: {
      host: '0.0.0.0',
      port: broker,
      tls: { port: tls, cert: '/c.pem', key: '/k.pem' },
      websocket: { port: ws, path: '/mqtt' },
      limits: { maxClients: 100 },
    },
    database: { synchronous: 'normal', maxBytes: 1024 ** 3 },
    devices: [
      { id: d1, kind: 'rfid-reader', transport: { type: 'mqtt', topics: ['rfid/{id}/#'] } },
      { id: d2, kind: 'smart-shelf', transport: { type: 'serial', path: '/dev/ttyUSB0', parity: 'even' } },
      { id: d3, kind: 'barcode-scanner', transport: { type: 'hid', vendorId: 0x05e0, productId: 0x1200 } },
    ],
    cameras: [{ id: cam, source: 'rtsp://cam/1', fps: 10 }],
    cloud: { enabled: true, url: 'mqtts://cloud.example.com', username: 'u', password: 'p' },
  };
}

/** Every property name the schema allows at an object path, across union variants. */
function schemaKeysAt(keys: (string | number)[]): Set<string> {
  type Node = { properties?: Record<string, Node>; items?: Node; anyOf?: Node[] };
  let nodes: Node[] = [ConfigSchema as unknown as Node];
  const expand = (n: Node): Node[] => (n.anyOf ? n.anyOf.flatMap(expand) : [n]);
  for (const k of keys) {
    nodes = nodes.flatMap(expand).flatMap((n) => {
      const next = typeof k === 'number' ? n.items : n.properties?.[k];
      return next ? [next] : [];
    });
  }
  return new Set(nodes.flatMap(expand).flatMap((n) => Object.keys(n.properties ?? {})));
}

/** Paths (as loader paths and as object key paths) of every closed object in fullConfig. */
const CLOSED: { path: string; keys: (string | number)[] }[] = [
  { path: '', keys: [] },
  { path: 'store', keys: ['store'] },
  { path: 'log', keys: ['log'] },
  { path: 'api', keys: ['api'] },
  { path: 'broker', keys: ['broker'] },
  { path: 'broker.tls', keys: ['broker', 'tls'] },
  { path: 'broker.websocket', keys: ['broker', 'websocket'] },
  { path: 'broker.limits', keys: ['broker', 'limits'] },
  { path: 'database', keys: ['database'] },
  { path: 'devices[0]', keys: ['devices', 0] },
  { path: 'devices[0].transport', keys: ['devices', 0, 'transport'] },
  { path: 'devices[1].transport', keys: ['devices', 1, 'transport'] },
  { path: 'devices[2]', keys: ['devices', 2] },
  { path: 'devices[2].transport', keys: ['devices', 2, 'transport'] },
  { path: 'cameras[0]', keys: ['cameras', 0] },
  { path: 'cloud', keys: ['cloud'] },
];

t.test('property: any valid ports and ids validate and come through unchanged', async (t) => {
  fc.assert(
    fc.property(fc.array(idArb, { minLength: 6, maxLength: 6 }), fc.array(portArb, { minLength: 4, maxLength: 4 }), (ids, ports) => {
      const raw = fullConfig(ids, ports);
      const { loaded, problems } = parseConfigText(stringify(raw));
      if (problems.length > 0 || !loaded) throw new Error(problems.map((p) => formatProblem(p)).join('\n'));
      const c = loaded.config;
      return (
        c.store.id === ids[0] &&
        c.hubId === ids[1] &&
        c.devices.map((d) => d.id).join('\n') === ids.slice(2, 5).join('\n') &&
        c.cameras[0]?.id === ids[5] &&
        c.api.port === ports[0] &&
        c.broker.port === ports[1] &&
        c.broker.tls?.port === ports[2] &&
        c.broker.websocket?.port === ports[3]
      );
    }),
  );
  t.pass('checked');
});

t.test('property: out-of-range ports and malformed ids are rejected at their path', async (t) => {
  const badPort = fc.oneof(fc.integer({ min: 65536, max: 2 ** 40 }), fc.integer({ min: -(2 ** 40), max: -1 }));
  const badId = fc.oneof(
    fc.stringMatching(/^[._-][A-Za-z0-9._-]{0,10}$/), // leading punctuation
    fc.stringMatching(/^[A-Za-z0-9]{1,5}[ /:@#]{1,3}[A-Za-z0-9]{0,5}$/), // a forbidden character
    fc.stringMatching(/^[A-Za-z0-9]{65,80}$/), // too long
  );
  fc.assert(
    fc.property(badPort, fc.integer({ min: 0, max: 3 }), (port, which) => {
      const ports = [1, 2, 3, 4];
      ports[which] = port;
      const problems = problemsOf(stringify(fullConfig([], ports)));
      const path = ['api.port', 'broker.port', 'broker.tls.port', 'broker.websocket.port'][which];
      return problems.length === 1 && problems[0]?.path === path;
    }),
  );
  fc.assert(
    fc.property(badId, fc.integer({ min: 0, max: 5 }), (id, which) => {
      const ids = ['a', 'b', 'c', 'd', 'e', 'f'];
      ids[which] = id;
      const problems = problemsOf(stringify(fullConfig(ids, [])));
      const path = ['store.id', 'hubId', 'devices[0].id', 'devices[1].id', 'devices[2].id', 'cameras[0].id'][which];
      return problems.length === 1 && problems[0]?.path === path && /pattern/.test(problems[0]?.message ?? '');
    }),
  );
  t.pass('checked');
});

t.test('property: an extra key at any object depth fails, naming that key and its line', async (t) => {
  // The helper that keeps real optional keys out of the generated extras (a counterexample once).
  t.ok(schemaKeysAt(['broker', 'tls']).has('ca'), 'broker.tls.ca is a schema key');
  t.ok(schemaKeysAt(['devices', 1, 'transport']).has('baudRate'), 'union variants are searched');
  const keyArb = fc.string({ minLength: 1, maxLength: 16, unit: 'grapheme' }).filter((k) => k !== '__proto__');
  fc.assert(
    fc.property(fc.constantFrom(...CLOSED), keyArb, fc.jsonValue({ maxDepth: 2 }), (target, key, value) => {
      const raw = fullConfig([], []);
      let obj: Record<string, unknown> = raw;
      for (const k of target.keys) obj = (obj as Record<string | number, unknown>)[k] as Record<string, unknown>;
      // A key the schema knows at that place (an optional one absent from fullConfig) is not extra.
      fc.pre(!Object.hasOwn(obj, key) && !schemaKeysAt(target.keys).has(key));
      obj[key] = value;
      const text = stringify(raw);
      // Where the key really is, asked of the yaml library independently of the loader's lookup.
      const lc = new LineCounter();
      const doc = parseDocument(text, { lineCounter: lc });
      const map = target.keys.length === 0 ? doc.contents : doc.getIn(target.keys, true);
      if (!isMap(map)) throw new Error('test bug: no map');
      const pair = map.items.find((p) => isScalar(p.key) && p.key.value === key);
      const keyNode = pair?.key as { range?: [number, number, number] } | undefined;
      if (!keyNode?.range) throw new Error('test bug: key not found');
      const expected = { path: target.path === '' ? key : `${target.path}.${key}`, line: lc.linePos(keyNode.range[0]).line, message: 'unknown key' };
      const problems = problemsOf(text);
      if (problems.length !== 1 || JSON.stringify(problems[0]) !== JSON.stringify(expected)) {
        throw new Error(`expected ${JSON.stringify(expected)}, got ${JSON.stringify(problems)}`);
      }
    }),
    { numRuns: 300 },
  );
  t.pass('checked');
});

// ---- the reference ---------------------------------------------------------------------------

type Schemaish = { type?: string; properties?: Record<string, Schemaish>; items?: Schemaish; anyOf?: Schemaish[]; default?: unknown };

/** Every key path in the schema, `devices[].transport.path` style, with its default when it has one. */
function schemaKeys(schema: Schemaish, prefix = ''): Map<string, unknown> {
  const out = new Map<string, unknown>();
  for (const [key, sub] of Object.entries(schema.properties ?? {})) {
    const path = prefix ? `${prefix}.${key}` : key;
    out.set(path, sub.default);
    const nested = sub.type === 'array' && sub.items?.properties ? [sub.items] : (sub.anyOf?.filter((b) => b.properties) ?? (sub.properties ? [sub] : []));
    for (const n of nested) for (const [k, v] of schemaKeys(n, sub.type === 'array' ? `${path}[]` : path)) if (!out.has(k)) out.set(k, v);
  }
  return out;
}

t.test('docs/configuration.md documents every key with its default', async (t) => {
  const doc = readFileSync(join(ROOT, 'docs/configuration.md'), 'utf8');
  const reference = doc.slice(doc.indexOf('\n## Reference'), doc.indexOf('\n## ', doc.indexOf('\n## Reference') + 1));
  const rows = reference.split('\n').filter((l) => l.startsWith('| `'));
  const keys = schemaKeys(ConfigSchema as unknown as Schemaish);
  t.ok(keys.size > 40, `${keys.size} keys`);
  for (const [path, def] of keys) {
    const row = rows.find((r) => r.startsWith(`| \`${path}\` |`));
    if (!row) {
      t.fail(`docs/configuration.md has no row for \`${path}\``);
      continue;
    }
    // the Default column shows the value as YAML would: `info`, `8080`, `false`
    if (def !== undefined) t.equal(row.split('|')[3]?.trim(), `\`${typeof def === 'object' ? JSON.stringify(def) : String(def)}\``, `${path}: default`);
  }
  for (const r of rows) {
    const path = /^\| `([^`]+)` \|/.exec(r)?.[1];
    if (path !== undefined) t.ok(keys.has(path), `docs row for \`${path}\` names a key the schema has`);
  }
});
