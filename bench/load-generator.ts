/**
 * A load generator process: many MQTT devices publishing QoS 1 messages, measuring the time from
 * publish() to PUBACK. Runs as a child process (fork) so its CPU is not the broker's; the parent
 * sends one `LoadPlan` and receives one `LoadResult`.
 */
import { RawDevice } from './raw-device.js';

export interface LoadPlan {
  url: string;
  devices: { id: string; secret?: string }[];
  /** 'max': each client keeps `window` messages in flight; 'rate': `rate` msgs/s spread over the clients. */
  mode: 'max' | 'rate';
  window: number;
  rate: number;
  durationMs: number;
  /** Run this long first without counting: JIT, caches and TCP windows warm up on both targets. */
  warmupMs: number;
  payloadBytes: number;
}

export interface LoadResult {
  /** Acknowledged in the measured phase. */
  acked: number;
  /** Acknowledged in all, warm-up included (for loss accounting). */
  ackedTotal: number;
  errors: number;
  elapsedMs: number;
  /** Latencies in ms, sampled (at most 200,000). */
  latencies: number[];
}

const MAX_SAMPLES = 200_000;

/** Connects like a device does: CONNACK 3 (server busy) means try again a little later. */
async function connect(url: string, d: { id: string; secret?: string }): Promise<RawDevice> {
  const port = Number(new URL(url).port);
  for (let attempt = 0; ; attempt++) {
    try {
      return await RawDevice.open(port, d.id, d.secret ? d.id : undefined, d.secret);
    } catch (err) {
      if ((err as { code?: number }).code !== 3 || attempt > 100) throw err;
      await new Promise((r) => setTimeout(r, 100 + Math.random() * 200));
    }
  }
}

async function run(plan: LoadPlan): Promise<LoadResult> {
  // RawDevice sets TCP_NODELAY: Nagle's algorithm would hold each small PUBLISH until the previous
  // one is ACKed at the TCP level, blurring both targets alike.
  const clients: RawDevice[] = await Promise.all(plan.devices.map((d) => connect(plan.url, d)));
  // Connected: tell the parent, and start only when every generator is connected (so the measured
  // phase holds no connection work, such as the broker's password checks).
  await new Promise<void>((resolve) => {
    process.once('message', () => resolve());
    process.send?.({ connected: true });
  });
  const topics = plan.devices.map((d) => `devices/${d.id}/weights`);
  const latencies: number[] = [];
  let acked = 0;
  let ackedTotal = 0;
  let errors = 0;
  let seen = 0;
  const payload = Buffer.alloc(plan.payloadBytes, 'x');
  const started = performance.now();
  const measureFrom = started + plan.warmupMs;
  const deadline = measureFrom + plan.durationMs;

  /** Sends one message on client `i`; `then` runs after its PUBACK (or failure). */
  const publishOne = (i: number, then: () => void): void => {
    const t0 = performance.now();
    (clients[i] as RawDevice).send(topics[i] as string, payload, (err) => {
      if (err) {
        if (t0 >= measureFrom) errors++;
      } else {
        ackedTotal++;
        if (t0 >= measureFrom) {
          acked++;
          seen++;
          const l = performance.now() - t0;
          if (latencies.length < MAX_SAMPLES) latencies.push(l);
          else {
            // reservoir sampling keeps the percentiles unbiased over a long run
            const j = Math.floor(Math.random() * seen);
            if (j < MAX_SAMPLES) latencies[j] = l;
          }
        }
      }
      then();
    });
  };

  if (plan.mode === 'max') {
    // each client keeps `window` messages in flight: every acknowledgement sends the next one
    await new Promise<void>((resolve) => {
      let open = clients.length * plan.window;
      const loop = (i: number) => {
        if (performance.now() < deadline) publishOne(i, () => loop(i));
        else if (--open === 0) resolve();
      };
      for (let i = 0; i < clients.length; i++) for (let w = 0; w < plan.window; w++) loop(i);
    });
  } else {
    let outstanding = 0;
    let finished: (() => void) | undefined;
    const settled = () => {
      outstanding--;
      if (outstanding === 0) finished?.();
    };
    const tickMs = 10;
    let sent = 0;
    let next = 0;
    await new Promise<void>((resolve) => {
      const timer = setInterval(() => {
        const now = performance.now();
        if (now >= deadline) {
          clearInterval(timer);
          resolve();
          return;
        }
        // send what the schedule says should have been sent by now (catches up after a late tick)
        const due = Math.floor(((now - started) / 1000) * plan.rate);
        while (sent < due) {
          outstanding++;
          publishOne(next, settled);
          next = (next + 1) % clients.length;
          sent++;
        }
      }, tickMs);
    });
    if (outstanding > 0) await new Promise<void>((resolve) => (finished = resolve));
  }
  const elapsedMs = performance.now() - measureFrom;
  for (const c of clients) c.close();
  return { acked, ackedTotal, errors, elapsedMs, latencies };
}

process.once('message', (plan: LoadPlan) => {
  run(plan).then(
    (result) => process.send?.(result, () => process.exit(0)),
    (err: Error) => {
      process.stderr.write(`load generator failed: ${err.message}\n`);
      process.exit(1);
    },
  );
});
