/**
 * A firmware job end to end through the real hub: HQ signs an image, submits the job to the API,
 * the ops service verifies the signature and hands the image to the smart-shelf driver, which
 * transfers it over Modbus RTU (a socat pty) to the shelf simulator; the shelf reboots on the new
 * version and the registry shows it. An image signed with another key never reaches the shelf.
 */
import { createHash, randomBytes } from 'node:crypto';
import t from 'tap';
import { generateSigningKeyPair, signImage } from '../hub/ops/firmware-signature.js';
import { startHub } from './helpers/hub-harness.js';
import { until } from './helpers/sync.js';

const SHELF = {
  id: 'shelf-fw',
  kind: 'smart-shelf',
  model: 'ws-4lane-int32',
  transport: { type: 'serial', path: '/dev/storehub/not-used', baudRate: 9600 },
  options: { unitId: 1, model: 'ws-4lane-int32', pollIntervalMs: 200, lanes: [{ lane: 1, sku: 'COLA-330', unitWeightGrams: 355 }] },
};

function job(id: string, image: Buffer, version: string, signature: string) {
  return {
    type: 'firmware.update',
    id,
    targets: [SHELF.id],
    version,
    image: { data: image.toString('base64'), sha256: createHash('sha256').update(image).digest('hex'), size: image.length },
    signature,
    healthCheckTimeoutSeconds: 60,
  };
}

t.test('a signed image reaches a simulated shelf over Modbus RTU; a wrongly signed one is rejected untouched', async (t) => {
  const hq = generateSigningKeyPair();
  const stranger = generateSigningKeyPair();
  const h = await startHub(t.testdir(), { devices: [SHELF], simulation: { enabled: true }, ops: { firmwareKeys: [hq.publicKeyPem] } } as never);
  t.teardown(() => h.stop());
  const registry = () => h.hub.devices?.registry?.get(SHELF.id);
  await until('the shelf is online with a version', () => registry()?.availability === 'online' && Boolean(registry()?.firmware), 60_000);
  const before = registry()?.firmware;

  const { token } = h.hub.store?.tokens.create('ops', 'hq') as { token: string };
  const post = async (doc: unknown) => {
    const res = await fetch(`${h.apiUrl}/api/v1/jobs`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify(doc),
    });
    return { status: res.status, body: (await res.json()) as { status: string; reason: string | null } };
  };

  const image = randomBytes(3000);
  const forged = await post(job('fw-forged', image, '9.9.9', signImage(image, stranger.privateKeyPem)));
  t.equal(forged.body.status, 'REJECTED', 'signed with a key not in ops.firmwareKeys');
  t.match(forged.body.reason, /signature/);
  t.equal(registry()?.firmware, before, 'the shelf was not touched');

  const good = await post(job('fw-good', image, '2.1.0', signImage(image, hq.privateKeyPem)));
  t.equal(good.status, 201);
  await until('the job finished', () => ['SUCCEEDED', 'FAILED'].includes(h.hub.ops?.get('fw-good')?.status ?? ''), 90_000);
  t.equal(h.hub.ops?.get('fw-good')?.status, 'SUCCEEDED', h.hub.ops?.get('fw-good')?.reason ?? '');
  t.equal(registry()?.firmware, '2.1.0', 'the registry shows the new version');
  t.equal(registry()?.availability, 'online', 'and the shelf is polled again');
});
