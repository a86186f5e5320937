/**
 * The dashboard in a real browser (Debian's chromium, driven by playwright-core): store IT opens
 * http://hub:8080/, pastes a read token, and sees health, devices with their availability, and stock.
 */
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import t from 'tap';
import type { Driver, DriverContext, DriverFactory } from '../hub/sdk/index.js';
import { startHub } from './helpers/hub-harness.js';
import { freePort } from './helpers/hub-process.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/** A shelf-like test device that reports one counted lane, then stays online. */
const steadyShelf: DriverFactory = {
  kind: 'test-shelf',
  transport: 'serial',
  validate: () => [],
  create(ctx: DriverContext): Driver {
    return {
      async start() {
        ctx.setHealth({ availability: 'online' });
        ctx.emit({
          type: 'shelf.weight',
          deviceId: ctx.device.id,
          time: Date.now(),
          lane: 1,
          grams: 1065,
          stable: true,
          flags: { motion: false, overCapacity: false, dataOk: true },
          count: 3,
          sku: 'COLA-330',
        });
      },
      async stop() {},
      async execute() {
        return { ok: true };
      },
    };
  },
};

t.test('the dashboard shows health, devices and stock to a signed-in user', async (t) => {
  const dir = t.testdir();
  const h = await startHub(
    join(dir, 'data'),
    {
      devices: [
        { id: 'shelf-7', kind: 'test-shelf', transport: { type: 'serial', path: '/dev/null' }, options: {} },
        { id: 'screen-2', kind: 'guide-screen', transport: { type: 'mqtt' }, options: {} },
      ],
      // the ledger syncs to the reference receiver, run in process as in the demo
      simulation: { enabled: true, cloudReceiver: true },
      cloud: { oms: { enabled: true, url: `http://127.0.0.1:${await freePort()}` } },
    } as never,
    new Map([['test-shelf', steadyShelf]]),
  );
  t.teardown(() => h.stop());
  const token = h.hub.store!.tokens.create('read', 'dashboard test').token;
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  t.teardown(() => browser.close());
  const page = await browser.newPage();
  await page.goto(`${h.apiUrl}/`);
  await page.waitForFunction(() => document.getElementById('ready')?.textContent === 'ready', undefined, { timeout: 20_000 });
  t.equal(await page.textContent('#ready'), 'ready', 'health from /healthz without a token');
  t.match(await page.textContent('#devicelist'), /Sign in/);

  await page.fill('#token', token);
  await page.click('#tokenform button');
  await page.waitForSelector('tr[data-device="shelf-7"]', { timeout: 20_000 });
  t.equal(await page.textContent('tr[data-device="shelf-7"] td:nth-child(3)'), 'online');
  t.equal(await page.textContent('tr[data-device="screen-2"] td:nth-child(3)'), 'offline');
  t.match(await page.textContent('tr[data-device="screen-2"]'), /no driver for kind guide-screen/);
  await page.waitForSelector('tr[data-sku="COLA-330"]', { timeout: 20_000 });
  t.equal(await page.textContent('tr[data-sku="COLA-330"] td:nth-child(3)'), '3', 'the lane count reached the stock table');
  t.match(await page.textContent('#store'), /test-store/);
  await page.waitForSelector('tr[data-sync="events"]', { timeout: 20_000 });
  t.match(await page.textContent('tr[data-sync="events"]'), /no uplink/, 'a stream without an uplink says so');
  await page.waitForFunction(() => document.querySelector('tr[data-sync="ledger/oms"]')?.textContent?.includes('in sync'), undefined, { timeout: 30_000 });
  t.match(await page.textContent('tr[data-sync="ledger/oms"] td:nth-child(3)'), /^[1-9]\d* of [1-9]\d*$/, 'the ledger acknowledged by the OMS');
  await page.screenshot({ path: join(dir, 'dashboard.png'), fullPage: true });

  await page.fill('#token', 'shb_AAAAAAAA_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA');
  await page.click('#tokenform button');
  await page.waitForFunction(() => document.getElementById('hubinfo')?.textContent?.includes('unknown or revoked'), undefined, { timeout: 20_000 });
  t.pass('a bad token is answered with the API error, not a blank page');
});
