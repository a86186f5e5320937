import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import mqtt from 'mqtt';
import t from 'tap';
import { freePort } from './helpers/hub-process.js';
import { startHub } from './helpers/hub-harness.js';

/** A throwaway CA and a server certificate for 127.0.0.1, made with openssl. */
function makeCerts(dir: string): { ca: string; cert: string; key: string } {
  const run = (args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  run(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=storehub test CA']);
  run(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=127.0.0.1']);
  const ext = join(dir, 'ext.cnf');
  execFileSync('sh', ['-c', `printf 'subjectAltName=IP:127.0.0.1\\n' > ${ext}`]);
  run(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.pem', '-days', '2', '-extfile', ext]);
  return { ca: join(dir, 'ca.pem'), cert: join(dir, 'server.pem'), key: join(dir, 'server.key') };
}

t.test('TLS and WebSocket listeners authenticate and journal like plain TCP', async (t) => {
  const dir = t.testdir();
  const certs = makeCerts(dir);
  const tlsPort = await freePort();
  const wsPort = await freePort();
  const h = await startHub(join(dir, 'data'), {
    broker: { tls: { port: tlsPort, cert: certs.cert, key: certs.key, requireClientCert: false }, websocket: { port: wsPort, path: '/mqtt' } },
  });
  t.teardown(() => h.stop());
  const secret = await h.hub.store!.credentials.add('screen-1', 'guide-screen');
  const auth = { clientId: 'screen-1', username: 'screen-1', password: secret, reconnectPeriod: 0 };

  const overTls = await mqtt.connectAsync(`mqtts://127.0.0.1:${tlsPort}`, { ...auth, ca: readFileSync(certs.ca) });
  await overTls.publishAsync('devices/screen-1/state', 'tls', { qos: 1 });
  await overTls.endAsync();

  const overWs = await mqtt.connectAsync(`ws://127.0.0.1:${wsPort}/mqtt`, auth);
  await overWs.publishAsync('devices/screen-1/state', 'ws', { qos: 1 });
  await overWs.endAsync();

  const rows = h.hub.store!.db.prepare("SELECT CAST(payload AS TEXT) AS p FROM device_messages WHERE device_id = 'screen-1' ORDER BY id").all() as {
    p: string;
  }[];
  t.same(
    rows.map((r) => r.p),
    ['tls', 'ws'],
  );

  const wrong = await mqtt.connectAsync(`ws://127.0.0.1:${wsPort}/mqtt`, { ...auth, password: 'nope' }).then(
    (c) => {
      c.end(true);
      return 0;
    },
    (err: { code?: number }) => err.code,
  );
  t.equal(wrong, 4, 'wrong secret refused over WebSocket too');
  t.ok(h.hub.broker!.addresses.tls?.endsWith(`:${tlsPort}`));
});
