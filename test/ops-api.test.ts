/**
 * The jobs API on a real hub (hub harness): scopes, submit / list / show / cancel, coded errors, the
 * OpenAPI document and metrics, and jobs that reach a device through the real devices service (a
 * supervised in-test driver answering the documented commands) and its registry.
 */
import { createHash } from 'node:crypto';
import t from 'tap';
import { generateSigningKeyPair, signImage } from '../hub/ops/firmware-signature.js';
import type { Job, JobSummary } from '../hub/ops/job-view.js';
import type { DriverFactory } from '../hub/sdk/driver.js';
import { type Harness, metricValue, startHub } from './helpers/hub-harness.js';
import { waitFor } from './helpers/ops.js';

/** A driver that keeps a firmware version and answers status, firmware.update/rollback, hold and anything else. */
function firmwareAwareDriver(held: { release?: () => void }): DriverFactory {
  return {
    kind: 'test-device',
    transport: 'mqtt',
    validate: () => [],
    create(ctx) {
      let version = '1.0.0';
      let previous = version;
      return {
        async start() {
          ctx.setInfo({ firmware: version });
          ctx.setHealth({ availability: 'online' });
        },
        async stop() {},
        async execute(command) {
          switch (command.name) {
            case 'status':
              return { ok: true, data: { version } };
            case 'firmware.update':
              if (!Buffer.isBuffer(command.args?.image)) return { ok: false, detail: 'no image' };
              previous = version;
              version = String(command.args?.version);
              ctx.setInfo({ firmware: version });
              return { ok: true };
            case 'firmware.rollback':
              version = previous;
              ctx.setInfo({ firmware: version });
              return { ok: true };
            case 'hold':
              await new Promise<void>((resolve) => {
                held.release = resolve;
              });
              return { ok: true };
            default:
              return { ok: true, data: { echoed: command.name } };
          }
        },
      };
    },
  };
}

async function call(h: Harness, path: string, token: string | undefined, init: { method?: string; body?: unknown } = {}) {
  const headers: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {};
  if (init.body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${h.apiUrl}${path}`, {
    method: init.method ?? 'GET',
    headers,
    ...(init.body !== undefined ? { body: JSON.stringify(init.body) } : {}),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

t.test('jobs API', async (t) => {
  const keys = generateSigningKeyPair();
  const held: { release?: () => void } = {};
  const overrides = {
    log: { level: 'warn' },
    ops: { firmwareKeys: [keys.publicKeyBase64] },
    devices: [{ id: 'reader-1', kind: 'test-device', transport: { type: 'mqtt' }, options: {} }],
  };
  const h = await startHub(t.testdir(), overrides as never, new Map([['test-device', firmwareAwareDriver(held)]]));
  t.teardown(() => h.stop());
  const tokens = h.hub.store!.tokens;
  const read = tokens.create('read').token;
  const ops = tokens.create('ops').token;
  await waitFor(() => h.hub.devices?.registry?.get('reader-1')?.availability === 'online', 'the test device to be online');
  /** Polls the API until the job is terminal (or 30 s pass). */
  const finished = async (id: string): Promise<Job> => {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const job = (await call(h, `/api/v1/jobs/${id}`, read)).body as unknown as Job;
      if (!['QUEUED', 'IN_PROGRESS'].includes(job.status) || Date.now() > deadline) return job;
      await new Promise((r) => setTimeout(r, 20));
    }
  };

  t.test('scopes: reading needs read, submitting and canceling need ops', async (t) => {
    const doc = { type: 'device.command', targets: ['reader-1'], command: { name: 'status' } };
    t.equal((await call(h, '/api/v1/jobs', undefined, { method: 'POST', body: doc })).body.code, 'HUB_ERR_AUTH_MISSING');
    const under = await call(h, '/api/v1/jobs', read, { method: 'POST', body: doc });
    t.equal(under.status, 403);
    t.equal(under.body.code, 'HUB_ERR_AUTH_SCOPE');
    t.equal((await call(h, '/api/v1/jobs', undefined)).status, 401);
    t.equal((await call(h, '/api/v1/jobs', read)).status, 200);
    t.equal((await call(h, '/api/v1/jobs/x/cancel', read, { method: 'POST' })).status, 403);
  });

  t.test('a device command reaches the driver through the devices service', async (t) => {
    const created = await call(h, '/api/v1/jobs', ops, {
      method: 'POST',
      body: { type: 'device.command', id: 'cmd-1', targets: ['reader-1'], command: { name: 'beep' } },
    });
    t.equal(created.status, 201);
    t.equal(created.body.id, 'cmd-1');
    t.equal(created.body.source, 'api');
    const done = await finished('cmd-1');
    t.equal(done.status, 'SUCCEEDED');
    t.equal(done.progress, 1);
    t.same(done.executions[0]?.result, { ok: true, data: { echoed: 'beep' } });
    const again = await call(h, '/api/v1/jobs', ops, {
      method: 'POST',
      body: { type: 'device.command', id: 'cmd-1', targets: ['reader-1'], command: { name: 'beep' } },
    });
    t.equal(again.status, 200, 'the same document again answers 200 with the existing job');
    const clash = await call(h, '/api/v1/jobs', ops, {
      method: 'POST',
      body: { type: 'device.command', id: 'cmd-1', targets: ['reader-1'], command: { name: 'boop' } },
    });
    t.equal(clash.status, 409);
    t.equal(clash.body.code, 'HUB_ERR_JOB_EXISTS');
  });

  t.test('a command to a configured device without a driver fails with the reason', async (t) => {
    const created = await call(h, '/api/v1/jobs', ops, { method: 'POST', body: { type: 'device.command', targets: ['ghost'], command: { name: 'beep' } } });
    const done = await finished(String(created.body.id));
    t.equal(done.status, 'FAILED');
    t.equal(done.executions[0]?.reason, 'no device ghost');
  });

  t.test('a signed firmware image larger than the API body limit is installed; the registry shows the new version', async (t) => {
    const image = Buffer.alloc(1_200_000, 7);
    t.ok(image.toString('base64').length > h.config.api.bodyLimitBytes, 'the document is larger than the ordinary body limit');
    const doc = {
      type: 'firmware.update',
      id: 'fw-api',
      targets: ['reader-1'],
      version: '2.1.0',
      image: { data: image.toString('base64'), sha256: createHash('sha256').update(image).digest('hex'), size: image.length },
      signature: signImage(image, keys.privateKeyPem),
    };
    const created = await call(h, '/api/v1/jobs', ops, { method: 'POST', body: doc });
    t.equal(created.status, 201, JSON.stringify(created.body).slice(0, 200));
    const done = await finished('fw-api');
    t.equal(done.status, 'SUCCEEDED', done.reason ?? '');
    t.equal((await call(h, '/api/v1/devices/reader-1', read)).body.firmware, '2.1.0');
    t.match((done.document as { image: { data: string } }).image.data, /bytes not shown/);
  });

  t.test('an unsigned firmware job is created REJECTED (201) and nothing is installed', async (t) => {
    const image = Buffer.from('x'.repeat(100));
    const created = await call(h, '/api/v1/jobs', ops, {
      method: 'POST',
      body: {
        type: 'firmware.update',
        targets: ['reader-1'],
        version: '9.9.9',
        image: { data: image.toString('base64'), sha256: createHash('sha256').update(image).digest('hex'), size: 100 },
      },
    });
    t.equal(created.status, 201);
    t.equal(created.body.status, 'REJECTED');
    t.match(created.body.reason, /not signed/);
    t.equal((await call(h, '/api/v1/devices/reader-1', read)).body.firmware, '2.1.0');
  });

  t.test('a malformed document is 400 HUB_ERR_JOB_INVALID and recorded REJECTED', async (t) => {
    const r = await call(h, '/api/v1/jobs', ops, { method: 'POST', body: { type: 'device.command', id: 'bad-1', targets: 'reader-1' } });
    t.equal(r.status, 400);
    t.equal(r.body.code, 'HUB_ERR_JOB_INVALID');
    t.match(r.body.message, /targets: must be array/);
    const shown = await call(h, '/api/v1/jobs/bad-1', read);
    t.equal(shown.body.status, 'REJECTED');
    const notJson = await call(h, '/api/v1/jobs', ops, { method: 'POST', body: 'just a string' });
    t.equal(notJson.status, 400);
    t.equal(notJson.body.code, 'HUB_ERR_JOB_INVALID');
  });

  t.test('desired state through the API', async (t) => {
    const created = await call(h, '/api/v1/jobs', ops, {
      method: 'POST',
      body: { type: 'config.desired', version: 4, config: { version: 1, store: { id: 'test-store' } } },
    });
    t.equal((await finished(String(created.body.id))).status, 'SUCCEEDED');
    const older = await call(h, '/api/v1/jobs', ops, {
      method: 'POST',
      body: { type: 'config.desired', version: 3, config: { version: 1, store: { id: 'test-store' } } },
    });
    t.equal(older.body.status, 'REJECTED');
    t.equal(older.body.reason, 'older than applied version 4');
  });

  t.test('list, filter, unknown id, cancel', async (t) => {
    const all = (await call(h, '/api/v1/jobs', read)).body as unknown as JobSummary[];
    t.ok(all.length >= 6);
    t.ok(all.every((j) => j.progress >= 0 && j.progress <= 1));
    const succeeded = (await call(h, '/api/v1/jobs?status=SUCCEEDED&type=device.command', read)).body as unknown as JobSummary[];
    t.strictSame(
      succeeded.map((j) => j.id),
      ['cmd-1'],
    );
    const bad = await call(h, '/api/v1/jobs?status=DONE', read);
    t.equal(bad.status, 400);
    t.equal(bad.body.code, 'HUB_ERR_API_VALIDATION');
    const unknown = await call(h, '/api/v1/jobs/nope', read);
    t.equal(unknown.status, 404);
    t.equal(unknown.body.code, 'HUB_ERR_JOB_UNKNOWN');
    t.equal((await call(h, '/api/v1/jobs/nope/cancel', ops, { method: 'POST' })).body.code, 'HUB_ERR_JOB_UNKNOWN');
    const finishedCancel = await call(h, '/api/v1/jobs/cmd-1/cancel', ops, { method: 'POST' });
    t.equal(finishedCancel.status, 409);
    t.equal(finishedCancel.body.code, 'HUB_ERR_JOB_FINISHED');

    await call(h, '/api/v1/jobs', ops, { method: 'POST', body: { type: 'device.command', id: 'long', targets: ['reader-1'], command: { name: 'hold' } } });
    await waitFor(() => held.release !== undefined, 'the hold command to reach the driver');
    const canceled = await call(h, '/api/v1/jobs/long/cancel', ops, { method: 'POST' });
    t.equal(canceled.status, 200);
    t.equal(canceled.body.status, 'CANCELED');
    t.match(canceled.body.reason, /canceled over the API by token/);
    held.release?.();
  });

  t.test('OpenAPI documents the routes; metrics count jobs', async (t) => {
    const doc = (await (await fetch(`${h.apiUrl}/docs/json`)).json()) as { paths: Record<string, Record<string, unknown>> };
    t.ok(doc.paths['/api/v1/jobs']?.post, 'POST /api/v1/jobs');
    t.ok(doc.paths['/api/v1/jobs']?.get, 'GET /api/v1/jobs');
    t.ok(doc.paths['/api/v1/jobs/{id}']?.get, 'GET /api/v1/jobs/{id}');
    t.ok(doc.paths['/api/v1/jobs/{id}/cancel']?.post, 'POST /api/v1/jobs/{id}/cancel');
    t.equal(await metricValue(h.hub, 'storehub_jobs_finished_total', { type: 'device.command', status: 'SUCCEEDED' }), 1);
    t.equal(await metricValue(h.hub, 'storehub_jobs_finished_total', { type: 'firmware.update', status: 'REJECTED' }), 1);
    t.equal(await metricValue(h.hub, 'storehub_service_up', { service: 'ops' }), 1);
    const text = await (await fetch(`${h.apiUrl}/metrics`)).text();
    t.match(text, /storehub_job_executions_in_progress\{type="firmware.update"\} 0/);
  });
});
