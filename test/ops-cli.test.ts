/**
 * The job and firmware CLI against a running hub process: keygen and sign produce an image the hub
 * accepts (and one signed with another key it rejects); create, watch (exit 0 only on SUCCEEDED),
 * list, show, cancel; exit codes for bad input, a missing token and an unreachable hub. Commands
 * that do not depend on each other run at once: each is a Node process start.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { generateSigningKeyPair } from '../hub/ops/firmware-signature.js';
import { runCliAsync as cli, spawnHub, waitForHealthy, writeConfig } from './helpers/hub-process.js';

// about twenty CLI processes and a hub: give a slow, busy machine room
t.setTimeout(300_000);

t.test('storehub job and firmware commands', async (t) => {
  const dir = t.testdir();
  const { STOREHUB_TOKEN: _ignored, ...envWithoutToken } = process.env;
  const keygen = await cli(['firmware', 'keygen', '--private-key', join(dir, 'hq.pem'), '--public-key', join(dir, 'hq.pub.pem')]);
  t.equal(keygen.status, 0, keygen.stderr);
  const publicKey = keygen.stdout.trim();
  t.match(publicKey, /^[A-Za-z0-9+/]{43}=$/, 'one line of base64 for ops.firmwareKeys');

  const cfg = await writeConfig(dir, { ops: { firmwareKeys: [publicKey] } });
  const writeJob = (name: string, doc: unknown) => {
    const file = join(dir, name);
    writeFileSync(file, typeof doc === 'string' ? doc : JSON.stringify(doc));
    return file;
  };
  const image = join(dir, 'reader-2.0.0.bin');
  writeFileSync(image, Buffer.alloc(3000, 0x5a));
  writeFileSync(join(dir, 'rogue.pem'), generateSigningKeyPair().privateKeyPem);

  const [created, overwrite, sign, rogueSign, bareSign] = await Promise.all([
    cli(['token', 'create', '--scope', 'ops', '--config', cfg.file]),
    cli(['firmware', 'keygen', '--private-key', join(dir, 'hq.pem'), '--public-key', join(dir, 'x.pem')]),
    cli(['firmware', 'sign', image, '--key', join(dir, 'hq.pem'), '--image-version', '2.0.0', '--target', 'ghost', '--id', 'fw-cli']),
    cli(['firmware', 'sign', image, '--key', join(dir, 'rogue.pem'), '--image-version', '2.0.0', '--target', 'ghost']),
    cli(['firmware', 'sign', image, '--key', join(dir, 'hq.pem')]),
  ]);
  t.equal(created.status, 0, created.stderr);
  t.equal(overwrite.status, 1, 'keygen does not overwrite an existing key');
  t.match(overwrite.stderr, /--force/);
  t.equal(sign.status, 0, sign.stderr);
  const doc = JSON.parse(sign.stdout) as { type: string; signature: string; targets: string[]; image: { size: number; sha256: string; data: string } };
  t.equal(doc.type, 'firmware.update');
  t.strictSame(doc.targets, ['ghost']);
  t.equal(doc.image.size, 3000);
  t.equal(Buffer.from(doc.image.data, 'base64').length, 3000, 'the image is embedded');
  const fragment = JSON.parse(bareSign.stdout) as { signature: string; image: { sha256: string } };
  t.equal(fragment.signature, doc.signature, 'without --image-version: just the signature (ed25519 is deterministic)');
  t.equal(fragment.image.sha256, doc.image.sha256);

  const token = created.stdout.trim();
  const api = ['--config', cfg.file, '--token', token];
  const hub = spawnHub(cfg.file);
  t.teardown(async () => {
    hub.child.kill('SIGTERM');
    await hub.exited;
  });
  await waitForHealthy(cfg.apiPort);

  const [desiredCreate, ghostCreate, fwCreate, rogueCreate, malformed, unreadable, noToken, unreachable] = await Promise.all([
    cli(['job', 'create', writeJob('desired.json', { type: 'config.desired', version: 2, config: { version: 1, store: { id: 'proc-store' } } }), ...api]),
    cli(['job', 'create', writeJob('cmd.json', { type: 'device.command', id: 'cmd-ghost', targets: ['ghost'], command: { name: 'beep' } }), ...api]),
    cli(['job', 'create', writeJob('fw.json', doc), ...api]),
    cli(['job', 'create', writeJob('rogue.json', JSON.parse(rogueSign.stdout)), ...api]),
    cli(['job', 'create', writeJob('bad.json', { type: 'device.command', targets: [] }), ...api]),
    cli(['job', 'create', writeJob('broken.json', '{ nope'), ...api]),
    cli(['job', 'list', '--config', cfg.file], envWithoutToken),
    cli(['job', 'list', '--url', 'http://127.0.0.1:1', '--token', token]),
  ]);

  t.equal(desiredCreate.status, 0, desiredCreate.stderr);
  const desiredId = desiredCreate.stdout.trim();
  t.match(desiredId, /^[0-9a-f-]{36}$/, 'create prints the id the hub made up');
  t.equal(ghostCreate.status, 0, ghostCreate.stderr);
  t.equal(ghostCreate.stdout.trim(), 'cmd-ghost');
  t.equal(fwCreate.status, 0, fwCreate.stderr);
  t.notMatch(fwCreate.stderr, /REJECTED/, 'the image signed by `firmware sign` verifies');
  t.equal(rogueCreate.status, 1, 'an image signed with another key: exit 1');
  t.match(rogueCreate.stderr, /REJECTED: bad signature/);
  t.equal(malformed.status, 2);
  t.match(malformed.stderr, /HUB_ERR_JOB_INVALID: .*targets/);
  t.equal(unreadable.status, 2);
  t.match(unreadable.stderr, /cannot read the job document/);
  t.equal(noToken.status, 2);
  t.match(noToken.stderr, /a token is needed/);
  t.equal(unreachable.status, 3);
  t.match(unreachable.stderr, /not reachable/);

  const [desiredWatch, ghostWatch, fwWatch, missingWatch] = await Promise.all([
    cli(['job', 'watch', desiredId, '--interval', '100', ...api]),
    cli(['job', 'watch', 'cmd-ghost', '--interval', '100', ...api]),
    cli(['job', 'watch', 'fw-cli', '--interval', '100', ...api]),
    cli(['job', 'watch', 'no-such-job', ...api]),
  ]);
  t.equal(desiredWatch.status, 0, 'watch exits 0 on SUCCEEDED');
  t.match(desiredWatch.stdout, new RegExp(`job ${desiredId} SUCCEEDED`));
  t.equal(ghostWatch.status, 1, 'watch exits 1 on FAILED');
  t.match(ghostWatch.stdout, /job cmd-ghost FAILED: 1 of 1 targets did not succeed: ghost FAILED \(no device ghost\)/);
  t.equal(fwWatch.status, 1, 'no such device, so the update itself fails');
  t.match(fwWatch.stdout, /the update failed: no device ghost/);
  t.equal(missingWatch.status, 1);
  t.match(missingWatch.stderr, /HUB_ERR_JOB_UNKNOWN/);

  const [list, failedOnly, show, cancel] = await Promise.all([
    cli(['job', 'list', ...api]),
    cli(['job', 'list', '--status', 'FAILED', '--json', ...api]),
    cli(['job', 'show', desiredId, ...api]),
    cli(['job', 'cancel', desiredId, ...api]),
  ]);
  t.equal(list.status, 0);
  t.match(list.stdout, /cmd-ghost\tdevice\.command\tFAILED\t100%/);
  t.match(list.stdout, /config\.desired\tSUCCEEDED/);
  t.strictSame((JSON.parse(failedOnly.stdout) as { id: string }[]).map((j) => j.id).sort(), ['cmd-ghost', 'fw-cli']);
  t.equal(show.status, 0);
  t.match(show.stdout, /config\.desired, from api\): SUCCEEDED 100%/);
  t.match(show.stdout, /hub\twave 1\tSUCCEEDED/);
  t.equal(cancel.status, 1, 'a finished job cannot be canceled');
  t.match(cancel.stderr, /HUB_ERR_JOB_FINISHED/);
});
