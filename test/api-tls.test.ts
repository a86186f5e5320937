/**
 * HTTPS on the API (api.tls): bearer tokens do not cross the store LAN in clear. The hub serves
 * TLS only; the storehub CLI trusts the configured CA and reaches the hub over loopback.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { Agent, fetch } from 'undici';
import { stringify } from 'yaml';
import { startHub } from './helpers/hub-harness.js';
import { assertBuilt, runCliAsync } from './helpers/hub-process.js';
import { makeCertificates } from './helpers/tls-certs.js';

t.test('the API over HTTPS: served with the configured certificate, trusted by the CLI, no plain HTTP', async (t) => {
  assertBuilt();
  const dir = t.testdir();
  const certs = makeCertificates(join(dir, 'pki'));
  const tls = { cert: certs.serverCert, key: certs.serverKey, ca: certs.ca };
  const h = await startHub(join(dir, 'data'), { api: { tls } });
  t.teardown(() => h.stop());
  t.match(h.apiUrl, /^https:\/\/127\.0\.0\.1:\d+$/, 'the API listens with TLS');
  const port = Number(new URL(h.apiUrl).port);
  const trusted = new Agent({ connect: { ca: (await import('node:fs')).readFileSync(certs.ca) } });
  t.teardown(() => trusted.close());

  const health = await fetch(`${h.apiUrl}/healthz`, { dispatcher: trusted });
  t.equal(health.status, 200, '/healthz over HTTPS');
  const token = h.hub.store!.tokens.create('read', 'tls').token;
  const status = await fetch(`${h.apiUrl}/api/v1/status`, { dispatcher: trusted, headers: { authorization: `Bearer ${token}` } });
  t.equal(status.status, 200, 'a bearer token over HTTPS');

  await t.rejects(fetch(`https://127.0.0.1:${port}/healthz`), 'a client that does not trust the CA is refused by its own TLS check');
  await t.rejects(fetch(`http://127.0.0.1:${port}/healthz`), 'plain HTTP gets no answer');

  // the CLI reads the same api section and talks HTTPS
  const file = join(dir, 'store.yaml');
  writeFileSync(file, stringify({ version: 1, store: { id: 'test-store' }, dataDir: 'data', api: { host: '127.0.0.1', port, tls } }));
  const cli = await runCliAsync(['status', '--config', file, '--token', token]);
  t.equal(cli.status, 0, cli.stderr);
  t.match(cli.stdout, new RegExp(`storehub at https://127\\.0\\.0\\.1:${port}: ok`));
  t.match(cli.stdout, /"store"/, 'the authenticated status came back');
});
