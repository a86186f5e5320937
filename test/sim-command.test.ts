/**
 * `storehub sim` beside a running hub: readers connect to its broker with fresh credentials, a
 * shelf appears as a pty linked at the port path the hub's config names, and the hub's drivers
 * pick both up by themselves.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { CLI, runCli, spawnHub, waitForHealthy, writeConfig } from './helpers/hub-process.js';

t.test('storehub sim drives a running hub over MQTT and a pty at the configured port', async (t) => {
  const ptyDir = mkdtempSync(join(tmpdir(), 'shsim-'));
  t.teardown(() => rmSync(ptyDir, { recursive: true, force: true }));
  const cfg = await writeConfig(t.testdir(), {
    devices: [
      {
        id: 'reader-1',
        kind: 'rfid-reader',
        transport: { type: 'mqtt' },
        options: { vendor: 'impinj', topics: { events: 'impinj/{id}/events', status: 'impinj/{id}/status' }, antennas: { '1': 'salesfloor', '2': 'backroom' } },
      },
      {
        id: 'shelf-1',
        kind: 'smart-shelf',
        transport: { type: 'serial', path: join(ptyDir, 'rs485-A'), baudRate: 9600 },
        options: { unitId: 1, model: 'ws-4lane-int32', lanes: [{ lane: 1, sku: 'COLA-330', unitWeightGrams: 355, tareGrams: 0 }] },
      },
    ],
  });
  const hub = spawnHub(cfg.file);
  t.teardown(async () => {
    hub.child.kill('SIGTERM');
    await hub.exited;
  });
  await waitForHealthy(cfg.apiPort);
  const token = runCli(['token', 'create', '--scope', 'read', '--config', cfg.file]).stdout.trim();
  const sim = spawn(process.execPath, [CLI, 'sim', '--config', cfg.file], { stdio: ['ignore', 'pipe', 'pipe'] });
  const simExited = new Promise<number | null>((resolve) => sim.once('exit', (code) => resolve(code)));
  t.teardown(() => {
    sim.kill('SIGKILL');
  });
  const get = async (path: string) => (await fetch(`http://127.0.0.1:${cfg.apiPort}${path}`, { headers: { authorization: `Bearer ${token}` } })).json();
  const deadline = Date.now() + 60_000;
  let devices: { id: string; availability: string }[] = [];
  let stock: { sku: string; onHand: number }[] = [];
  while (Date.now() < deadline) {
    devices = (await get('/api/v1/devices')) as typeof devices;
    stock = (await get('/api/v1/stock?sku=COLA-330')) as typeof stock;
    if (devices.every((d) => d.availability === 'online') && stock.length > 0) break;
    await new Promise((r) => setTimeout(r, 250));
  }
  t.same(
    devices.map((d) => [d.id, d.availability]),
    [
      ['reader-1', 'online'],
      ['shelf-1', 'online'],
    ],
  );
  t.ok((stock[0]?.onHand ?? 0) > 0, 'the simulated shelf stocked its lane');
  const items = (await get('/api/v1/events?kind=item.arrived&limit=5')) as { items: unknown[] };
  t.ok(items.items.length > 0, 'the simulated reader produced item events');
  sim.kill('SIGTERM');
  t.equal(await simExited, 0, 'sim stops cleanly on SIGTERM');
});
