import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import mqtt from 'mqtt';
import t from 'tap';
import { freePort } from './helpers/hub-process.js';
import { metricValue, startHub } from './helpers/hub-harness.js';

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

/** A client certificate signed by `makeCerts`' CA (or by another CA, to be refused). */
function makeClientCert(dir: string, name: string, ca = 'ca'): { cert: Buffer; key: Buffer } {
  const run = (args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  if (ca !== 'ca') run(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${ca}.key`, '-out', `${ca}.pem`, '-days', '2', '-subj', `/CN=${ca}`]);
  run(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`]);
  run(['x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.pem`, '-CAkey', `${ca}.key`, '-CAcreateserial', '-out', `${name}.pem`, '-days', '2']);
  return { cert: readFileSync(join(dir, `${name}.pem`)), key: readFileSync(join(dir, `${name}.key`)) };
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

t.test('mutual TLS: a device needs a certificate from the configured CA and still its id and secret', async (t) => {
  const dir = t.testdir();
  const certs = makeCerts(dir);
  const tlsPort = await freePort();
  const h = await startHub(join(dir, 'data'), { broker: { tls: { port: tlsPort, cert: certs.cert, key: certs.key, ca: certs.ca, requireClientCert: true } } });
  t.teardown(() => h.stop());
  const secret = await h.hub.store!.credentials.add('robot-1', 'robot');
  const url = `mqtts://127.0.0.1:${tlsPort}`;
  const base = { clientId: 'robot-1', username: 'robot-1', password: secret, reconnectPeriod: 0, ca: readFileSync(certs.ca), connectTimeout: 10_000 };
  // With TLS 1.3 a refused client certificate can surface only as the connection closing after
  // the client's handshake finished, so a close without CONNACK counts as refused too.
  const attempt = (extra: mqtt.IClientOptions) =>
    new Promise<string>((resolve) => {
      const c = mqtt.connect(url, { ...base, ...extra });
      let connected = false;
      c.once('connect', () => {
        connected = true;
        void c
          .publishAsync('devices/robot-1/state', 'mtls', { qos: 1 })
          .then(() => c.endAsync())
          .then(() => resolve('connected'));
      });
      c.once('error', (err: Error & { code?: number | string }) => {
        c.end(true);
        resolve(`refused ${String(err.code ?? 'tls')}`);
      });
      c.once('close', () => {
        if (connected) return;
        c.end(true);
        resolve('refused closed');
      });
    });

  t.match(await attempt({}), /^refused/, 'no client certificate: the handshake fails');
  const stranger = makeClientCert(dir, 'stranger', 'other-ca');
  t.match(await attempt(stranger), /^refused/, 'a certificate from another CA is refused');
  const good = makeClientCert(dir, 'robot-1');
  t.equal(await attempt({ ...good, password: 'wrong' }), 'refused 4', 'a good certificate with a wrong secret gets CONNACK 4');
  t.equal(await attempt(good), 'connected', 'certificate and secret: connected and published');
  const rows = h.hub.store!.db.prepare("SELECT count(*) AS n FROM device_messages WHERE device_id = 'robot-1'").get() as { n: number };
  t.equal(rows.n, 1);
});

t.test('an oversize packet over WebSocket closes the connection and is counted', async (t) => {
  const dir = t.testdir();
  const wsPort = await freePort();
  const h = await startHub(join(dir, 'data'), { broker: { websocket: { port: wsPort, path: '/mqtt' }, limits: { maxPacketBytes: 1024 } } });
  t.teardown(() => h.stop());
  const secret = await h.hub.store!.credentials.add('screen-2', 'guide-screen');
  const client = await mqtt.connectAsync(`ws://127.0.0.1:${wsPort}/mqtt`, { clientId: 'screen-2', username: 'screen-2', password: secret, reconnectPeriod: 0 });
  const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
  client.publish('devices/screen-2/log', Buffer.alloc(4096, 'x'), { qos: 1 });
  await closed;
  client.end(true);
  t.equal(await metricValue(h.hub, 'storehub_broker_oversize_packets_total'), 1, 'counted');
  const rows = h.hub.store!.db.prepare("SELECT count(*) AS n FROM device_messages WHERE device_id = 'screen-2'").get() as { n: number };
  t.equal(rows.n, 0, 'nothing stored');
});
