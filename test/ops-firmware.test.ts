/**
 * Firmware jobs: the signature (good, bad, missing, wrong key, no keys) checked before any byte goes
 * to a device, inline and fetched images, waves, the abort threshold, health checks and rollback.
 */
import { createHash, generateKeyPairSync } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import t, { type Test } from 'tap';
import { generateSigningKeyPair, parseFirmwareKeys, parsePublicKey, signImage } from '../hub/ops/firmware-signature.js';
import { beyondThreshold, waveOfEach, waveSizes, wavesProblems } from '../hub/ops/rollout.js';
import { FakeCommander, type FakeDevice } from './helpers/fake-commander.js';
import { openOps, waitForStatus } from './helpers/ops.js';

const HQ = generateSigningKeyPair();
const OTHER = generateSigningKeyPair();
const IMAGE = Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7) % 256));

function firmwareJob(overrides: Record<string, unknown> = {}, image = IMAGE, key = HQ.privateKeyPem) {
  return {
    type: 'firmware.update',
    targets: ['reader-1'],
    version: '2.0.0',
    image: { data: image.toString('base64'), sha256: createHash('sha256').update(image).digest('hex'), size: image.length },
    signature: signImage(image, key),
    ...overrides,
  };
}

const devices = (ids: string[], d: FakeDevice = {}) => Object.fromEntries(ids.map((id) => [id, { firmware: '1.0.0', ...d }]));

t.test('a correctly signed image is installed, health-checked and reported per target', async (t) => {
  const commander = new FakeCommander(devices(['reader-1', 'reader-2']));
  const rig = await openOps(t, t.testdir(), { commander, firmwareKeys: [HQ.publicKeyBase64] });
  const job = rig.service.submit(firmwareJob({ targets: ['reader-1', 'reader-2'] }), 'cloud');
  const done = await waitForStatus(rig.service, job.id, 'SUCCEEDED', 'FAILED', 'REJECTED');
  t.equal(done.status, 'SUCCEEDED', done.reason ?? '');
  const update = commander.calls.find((c) => c.name === 'firmware.update');
  t.ok(Buffer.isBuffer(update?.args?.image), 'the driver gets the image as a Buffer');
  t.ok((update?.args?.image as Buffer).equals(IMAGE), 'exactly the signed bytes');
  t.equal(update?.args?.version, '2.0.0');
  t.strictSame(commander.sent('reader-1'), ['firmware.update', 'status']);
  t.equal(commander.firmwareVersion('reader-2'), '2.0.0');
  t.same(done.executions[0]?.result, { from: '1.0.0', to: '2.0.0' });
  t.match(JSON.stringify(done.document), /\[4096 bytes not shown\]/, 'the image is not echoed by the API');
  t.notMatch(JSON.stringify(done.document), IMAGE.toString('base64').slice(0, 40));
});

t.test('a PEM public key works as well as the raw base64 form', async (t) => {
  const commander = new FakeCommander(devices(['reader-1']));
  const rig = await openOps(t, t.testdir(), { commander, firmwareKeys: [OTHER.publicKeyPem, HQ.publicKeyPem] });
  const job = rig.service.submit(firmwareJob(), 'api');
  t.equal((await waitForStatus(rig.service, job.id, 'SUCCEEDED', 'FAILED', 'REJECTED')).status, 'SUCCEEDED');
});

t.test('bad, missing or foreign signatures are REJECTED before a byte reaches a device', async (t) => {
  const tampered = Buffer.from(IMAGE);
  tampered[100] = (tampered[100] ?? 0) ^ 0xff;
  const cases: [string, Record<string, unknown>, RegExp, string[]?][] = [
    ['signature over other bytes', firmwareJob({ signature: signImage(tampered, HQ.privateKeyPem) }), /bad signature/],
    ['signed with a key the hub does not trust', firmwareJob({}, IMAGE, OTHER.privateKeyPem), /bad signature: no configured firmware key verifies this image/],
    ['no signature', firmwareJob({ signature: undefined }), /not signed/],
    ['empty signature', firmwareJob({ signature: '' }), /not signed/],
    ['signature of the wrong length', firmwareJob({ signature: Buffer.alloc(32).toString('base64') }), /not base64 of 64 bytes/],
    ['image bytes that do not match the sha256', { ...firmwareJob(), image: { ...firmwareJob().image, data: tampered.toString('base64') } }, /SHA-256/],
    ['a size that does not match', { ...firmwareJob(), image: { ...firmwareJob().image, size: 10 } }, /the job says 10/],
    ['no firmware keys configured', firmwareJob(), /no firmware keys are configured/, []],
  ];
  for (const [what, doc, reason, keys] of cases) {
    const commander = new FakeCommander(devices(['reader-1']));
    const rig = await openOps(t, t.testdir(), { commander, firmwareKeys: keys ?? [HQ.publicKeyBase64] });
    const job = rig.service.submit(JSON.parse(JSON.stringify(doc)) as unknown, 'cloud');
    t.equal(job.status, 'REJECTED', `${what}: REJECTED at submit`);
    t.match(job.reason, reason, `${what}: reason`);
    t.equal(job.executions[0]?.status, 'REJECTED', `${what}: the target's execution too`);
    t.ok(
      rig.updates.some((u) => u.id === job.id && u.status === 'REJECTED'),
      `${what}: reported upstream`,
    );
    // give a wrongly started run every chance to reach the device before looking
    await new Promise((r) => setImmediate(r));
    t.strictSame(commander.calls, [], `${what}: nothing was sent to the device`);
    t.equal(commander.firmwareVersion('reader-1'), '1.0.0');
    await rig.close();
  }
});

t.test('firmware documents with both or neither of url and data, or bad waves, are malformed', async (t) => {
  const rig = await openOps(t, t.testdir(), { firmwareKeys: [HQ.publicKeyBase64] });
  const base = firmwareJob();
  t.throws(() => rig.service.submit({ ...base, image: { ...base.image, url: 'http://x/fw.bin' } }, 'api'), {
    code: 'HUB_ERR_JOB_INVALID',
    message: /exactly one of url and data/,
  });
  const { data: _data, ...noData } = base.image;
  t.throws(() => rig.service.submit({ ...base, image: noData }, 'api'), { code: 'HUB_ERR_JOB_INVALID', message: /exactly one of url and data/ });
  t.throws(() => rig.service.submit({ ...base, waves: ['150%'] }, 'api'), { code: 'HUB_ERR_JOB_INVALID', message: /waves\[0\]/ });
  t.throws(() => rig.service.submit({ ...base, abortThreshold: 2 }, 'api'), { code: 'HUB_ERR_JOB_INVALID', message: /abortThreshold/ });
  t.throws(() => rig.service.submit({ ...base, image: { ...base.image, data: 'not*base64' } }, 'api'), { code: 'HUB_ERR_JOB_INVALID', message: /image.data/ });
});

async function serve(t: Test, body: Buffer | null): Promise<string> {
  const server: Server = createServer((req, res) => {
    if (!body || req.url !== '/fw.bin') {
      res.writeHead(404).end('no such image');
      return;
    }
    res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/fw.bin`;
}

t.test('an image fetched by URL is verified after the download and before any device', async (t) => {
  const url = await serve(t, IMAGE);
  const commander = new FakeCommander(devices(['reader-1']));
  const rig = await openOps(t, t.testdir(), { commander, firmwareKeys: [HQ.publicKeyBase64] });
  const { data: _data, ...spec } = firmwareJob().image;
  const good = rig.service.submit({ ...firmwareJob(), image: { ...spec, url } }, 'cloud');
  t.equal((await waitForStatus(rig.service, good.id, 'SUCCEEDED', 'FAILED', 'REJECTED')).status, 'SUCCEEDED');

  const forged = rig.service.submit(
    { ...firmwareJob({ signature: signImage(Buffer.from('other'), HQ.privateKeyPem) }), image: { ...spec, url }, targets: ['reader-1'] },
    'cloud',
  );
  t.equal(forged.status, 'QUEUED', 'a fetched image cannot be judged at submit');
  const rejected = await waitForStatus(rig.service, forged.id, 'SUCCEEDED', 'FAILED', 'REJECTED');
  t.equal(rejected.status, 'REJECTED');
  t.match(rejected.reason, /bad signature/);
  t.equal(commander.sent('reader-1').filter((n) => n === 'firmware.update').length, 1, 'only the good job reached the device');
});

t.test('an image URL that answers 404 fails the job without touching a device', async (t) => {
  const url = await serve(t, null);
  const commander = new FakeCommander(devices(['reader-1']));
  const rig = await openOps(t, t.testdir(), { commander, firmwareKeys: [HQ.publicKeyBase64] });
  const { data: _data, ...spec } = firmwareJob().image;
  const job = rig.service.submit({ ...firmwareJob(), image: { ...spec, url } }, 'cloud');
  const done = await waitForStatus(rig.service, job.id, 'SUCCEEDED', 'FAILED', 'REJECTED');
  t.equal(done.status, 'FAILED');
  t.match(done.reason, /could not fetch the image: GET .* answered 404/);
  t.strictSame(commander.calls, []);
});

t.test('waves: sizes and shares of the targets, in order', async (t) => {
  t.strictSame(waveSizes(5, [1, '50%']), [1, 3, 1]);
  t.strictSame(waveSizes(10, ['10%', '10%', '30%']), [1, 1, 3, 5]);
  t.strictSame(waveSizes(3, [5]), [3], 'a wave larger than what is left takes the rest');
  t.strictSame(waveSizes(4, undefined), [4], 'no waves: one wave');
  t.strictSame(waveOfEach(5, [2, 2]), [0, 0, 1, 1, 2]);
  t.strictSame(wavesProblems([0, '0%', '101%', 'x', 3, '12.5%']), [
    'waves[0]: a count must be a whole number of at least 1',
    'waves[1]: "0%" is not a percentage in (0%, 100%]',
    'waves[2]: "101%" is not a percentage in (0%, 100%]',
    'waves[3]: "x" is not a percentage in (0%, 100%]',
  ]);
  t.equal(beyondThreshold(1, 2, 0.5), false, 'at the threshold is not beyond it');
  t.equal(beyondThreshold(2, 3, 0.5), true);
  t.equal(beyondThreshold(1, 10, 0), true, 'threshold 0: any failure aborts');

  const ids = ['r1', 'r2', 'r3', 'r4', 'r5'];
  const commander = new FakeCommander(devices(ids));
  const rig = await openOps(t, t.testdir(), { commander, firmwareKeys: [HQ.publicKeyBase64] });
  const job = rig.service.submit(firmwareJob({ targets: ids, waves: [1, '50%'] }), 'api');
  const done = await waitForStatus(rig.service, job.id, 'SUCCEEDED', 'FAILED');
  t.equal(done.status, 'SUCCEEDED');
  t.strictSame(
    done.executions.map((e) => e.wave),
    [0, 1, 1, 1, 2],
  );
  const updates = commander.calls.filter((c) => c.name === 'firmware.update').map((c) => c.deviceId);
  t.equal(updates[0], 'r1', 'the first wave goes first');
  t.equal(updates[4], 'r5', 'the last wave goes last');
  t.strictSame(updates.slice(1, 4).sort(), ['r2', 'r3', 'r4']);
});

t.test('failures beyond the abort threshold in a wave cancel the rest of the rollout, with rollbacks', async (t) => {
  const commander = new FakeCommander({
    ...devices(['a', 'd', 'e']),
    b: { firmware: '1.0.0', failUpdate: 'flash write failed' },
    c: { firmware: '1.0.0', bootsVersion: '1.9.9' },
  });
  const rig = await openOps(t, t.testdir(), { commander, firmwareKeys: [HQ.publicKeyBase64] });
  const job = rig.service.submit(
    firmwareJob({ targets: ['a', 'b', 'c', 'd', 'e'], waves: [1, 2], abortThreshold: 0.4, healthCheckTimeoutSeconds: 0 }),
    'cloud',
  );
  const done = await waitForStatus(rig.service, job.id, 'SUCCEEDED', 'FAILED');
  t.equal(done.status, 'FAILED');
  t.match(done.reason, /rollout aborted after wave 2: 2 of 2 targets failed, more than abortThreshold 0.4/);
  const by = Object.fromEntries(done.executions.map((e) => [e.target, e]));
  t.equal(by.a?.status, 'SUCCEEDED');
  t.equal(by.b?.status, 'FAILED');
  t.match(by.b?.reason, /the update failed: flash write failed; rolled back/);
  t.equal(by.c?.status, 'FAILED');
  t.match(by.c?.reason, /health check failed: the device reports version 1\.9\.9, not 2\.0\.0; rolled back/);
  t.equal(commander.firmwareVersion('c'), '1.0.0', 'c is back on its old version');
  t.same(by.c?.result, { from: '1.0.0', to: '2.0.0', rolledBack: true, runningAfter: '1.0.0' });
  for (const id of ['d', 'e']) {
    t.equal(by[id]?.status, 'CANCELED', `${id} canceled`);
    t.match(by[id]?.reason, /rollout aborted/);
    t.strictSame(commander.sent(id), [], `${id} was never touched`);
  }
  t.ok(commander.sent('b').includes('firmware.rollback'));
  t.equal(done.progress, 1);
});

t.test('failures at or under the threshold let the rollout go on; the job still fails at the end', async (t) => {
  const commander = new FakeCommander({ ...devices(['a', 'c', 'd']), b: { firmware: '1.0.0', unhealthyAfterUpdate: true } });
  const rig = await openOps(t, t.testdir(), { commander, firmwareKeys: [HQ.publicKeyBase64] });
  const job = rig.service.submit(firmwareJob({ targets: ['a', 'b', 'c', 'd'], waves: [2, 2], abortThreshold: 0.5, healthCheckTimeoutSeconds: 0 }), 'cloud');
  const done = await waitForStatus(rig.service, job.id, 'SUCCEEDED', 'FAILED');
  t.equal(done.status, 'FAILED');
  t.match(done.reason, /^1 of 4 targets did not succeed: b FAILED \(health check failed: status failed: device not responding; rolled back\)/);
  t.strictSame(
    done.executions.map((e) => e.status),
    ['SUCCEEDED', 'FAILED', 'SUCCEEDED', 'SUCCEEDED'],
  );
  t.ok(commander.sent('d').includes('firmware.update'), 'the second wave ran');
});

t.test('an image that boots and answers status but leaves the device degraded is rolled back', async (t) => {
  const commander = new FakeCommander({ a: { firmware: '1.0.0', degradedAfterUpdate: 'lane 1 reports data not ok' } });
  const rig = await openOps(t, t.testdir(), { commander, firmwareKeys: [HQ.publicKeyBase64] });
  const job = rig.service.submit(firmwareJob({ targets: ['a'], healthCheckTimeoutSeconds: 0 }), 'api');
  const done = await waitForStatus(rig.service, job.id, 'SUCCEEDED', 'FAILED');
  t.equal(done.status, 'FAILED');
  t.match(done.executions[0]?.reason, /health check failed: the device is degraded: lane 1 reports data not ok/);
  t.ok(commander.sent('a').includes('firmware.rollback'), 'rolled back');
  t.equal(commander.firmwareVersion('a'), '1.0.0');
});

t.test('a target already healthy on the version is not flashed again', async (t) => {
  const commander = new FakeCommander({ a: { firmware: '2.0.0' } });
  const rig = await openOps(t, t.testdir(), { commander, firmwareKeys: [HQ.publicKeyBase64] });
  const job = rig.service.submit(firmwareJob({ targets: ['a'] }), 'api');
  const done = await waitForStatus(rig.service, job.id, 'SUCCEEDED', 'FAILED');
  t.equal(done.status, 'SUCCEEDED');
  t.strictSame(commander.sent('a'), ['status']);
  t.same(done.executions[0]?.result, { from: '2.0.0', to: '2.0.0', alreadyRunning: true });
});

t.test('public keys: PEM and raw base64 parse; other key types and junk are refused', async (t) => {
  t.equal(parsePublicKey(HQ.publicKeyBase64).asymmetricKeyType, 'ed25519');
  t.equal(parsePublicKey(HQ.publicKeyPem).asymmetricKeyType, 'ed25519');
  const x25519 = generateKeyPairSync('x25519').publicKey.export({ format: 'pem', type: 'spki' }).toString();
  t.throws(() => parsePublicKey(x25519), /an x25519 key, not ed25519/);
  t.throws(() => parsePublicKey('AAAA'), /not PEM, nor base64 of 32 raw key bytes/);
  t.throws(() => parseFirmwareKeys([HQ.publicKeyBase64, 'junk']), { code: 'HUB_ERR_CONFIG_INVALID', message: /ops\.firmwareKeys\[1\]/ });
  t.equal(parseFirmwareKeys([HQ.publicKeyBase64, OTHER.publicKeyPem]).length, 2);
});
