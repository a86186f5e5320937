import { Writable } from 'node:stream';
import t from 'tap';
import { createLogger } from '../hub/observability/logger.js';

t.test('secrets are redacted wherever the hub logs them', async (t) => {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk, _enc, cb) {
      lines.push(String(chunk));
      cb();
    },
  });
  const log = createLogger({ pretty: false, destination: sink });
  log.info(
    {
      password: 'p0',
      config: { cloud: { password: 'p1' }, broker: { tls: { key: 'k1' } }, devices: [{ options: { password: 'p2', token: 't2' } }] },
      req: { headers: { authorization: 'Bearer shb_x' } },
    },
    'config loaded',
  );
  const out = lines.join('');
  for (const secret of ['p0', 'p1', 'k1', 'p2', 't2', 'shb_x']) t.notOk(out.includes(`"${secret}"`) || out.includes(secret), `${secret} redacted`);
  t.match(out, /\[redacted\]/);
});
