/**
 * Shelf polling (issue 3): the smart-shelf driver on a SerialLine at 9,600 baud polls a four-lane
 * ShelfSimulator (ws-4lane-int32: one FC 3 read of 16 registers per cycle) as fast as it may
 * (pollIntervalMs at its minimum, 10 ms, below one transaction's wire time, so cycles run back to back).
 *
 * Two lines:
 * - `pty`: the driver and the simulator on the two ends of one socat pty pair. A pty does not pace
 *   bytes at the baud rate, so this measures the driver's own per-transaction overhead (gaps, timers,
 *   framing) and can exceed the physical rate.
 * - `paced`: two pty pairs joined by a relay in this process that holds every chunk for its wire time
 *   at 9,600 baud (11 bits a character, the driver's own timing) on one half-duplex bus, and hands a
 *   request to the shelf only after a further t3.5 (when a real slave would detect the frame's end),
 *   so the line behaves like RS-485 at 9,600 baud. This is the figure to compare with the physical
 *   frame rate. (The simulator has no pacing option of its own; it answers at once.)
 *
 * Physical rate of one transaction: (request 8 + answer 5 + 2 x 16 registers = 37 bytes) x 11 bits /
 * 9,600 baud, plus two t3.5 gaps (3.5 characters each).
 */
import { SerialPort } from 'serialport';
import { smartShelfDriver } from '../drivers/smart-shelf/index.js';
import { characterTimeMs, interFrameGapMs } from '../drivers/smart-shelf/modbus-rtu.js';
import { createPtyPair, type PtyPair, ShelfSimulator } from '../firmware-sim/smart-shelf/index.js';
import { SerialLine } from '../hub/devices/transports/serial-line.js';
import type { DeviceEvent, DriverContext, DriverDevice, SerialTransport } from '../hub/sdk/index.js';
import { sleep } from './processes.js';

export const BAUD = 9600;
const LANES = 4;
const REGISTERS = 4 * LANES; // ws-4lane-int32: a 4-register block per lane
const REQUEST_BYTES = 8;
const ANSWER_BYTES = 5 + 2 * REGISTERS;
const WARMUP_MS = 1000;

export interface ShelfFigures {
  line: 'pty' | 'paced';
  baudRate: number;
  bitsPerCharacter: number;
  seconds: number;
  transactions: number;
  transactionsPerSecond: number;
  lanesPerSecond: number;
  /** Physical transactions/s at this baud rate: request + answer wire time + two t3.5 gaps. */
  physicalTransactionsPerSecond: number;
  physicalLanesPerSecond: number;
  ratio: number;
  timeouts: number;
  crcErrors: number;
  malformed: number;
  events: number;
}

export function physicalTransactionMs(baud = BAUD): number {
  return (REQUEST_BYTES + ANSWER_BYTES) * characterTimeMs(baud) + 2 * interFrameGapMs(baud);
}

/** A relay between two ports that delivers each chunk after its wire time on a shared half-duplex bus. */
async function pacedRelay(pathToDriver: string, pathToShelf: string, baud: number): Promise<() => Promise<void>> {
  const open = (path: string) =>
    new Promise<SerialPort>((resolve, reject) => {
      const p = new SerialPort({ path, baudRate: baud, autoOpen: false });
      p.on('error', () => {});
      p.open((err) => (err ? reject(err) : resolve(p)));
    });
  const a = await open(pathToDriver);
  const b = await open(pathToShelf);
  const charMs = characterTimeMs(baud);
  let busyUntil = 0;
  const timers = new Set<NodeJS.Timeout>();
  // A slave knows a request has ended only after t3.5 of silence (SL §2.5.1.1), so requests reach
  // the simulator (which answers at once) one gap after their last byte; answers reach the driver at
  // their last byte, and the driver keeps its own t3.5 before the next request.
  const forward = (to: SerialPort, endOfFrameMs: number) => (chunk: Buffer) => {
    const now = performance.now();
    busyUntil = Math.max(now, busyUntil) + chunk.length * charMs;
    const t = setTimeout(
      () => {
        timers.delete(t);
        to.write(chunk);
      },
      busyUntil - now + endOfFrameMs,
    );
    timers.add(t);
  };
  a.on('data', forward(b, interFrameGapMs(baud)));
  b.on('data', forward(a, 0));
  return async () => {
    for (const t of timers) clearTimeout(t);
    await Promise.all([a, b].map((p) => new Promise<void>((resolve) => (p.isOpen ? p.close(() => resolve()) : resolve()))));
  };
}

export async function shelfPolling(line: 'pty' | 'paced', durationMs: number): Promise<ShelfFigures> {
  const cleanups: (() => Promise<void>)[] = [];
  try {
    const pairs: PtyPair[] = [await createPtyPair()];
    cleanups.push(() => (pairs[0] as PtyPair).close());
    let driverPath = (pairs[0] as PtyPair).a;
    let shelfPath = (pairs[0] as PtyPair).b;
    if (line === 'paced') {
      const second = await createPtyPair();
      cleanups.push(() => second.close());
      cleanups.push(await pacedRelay((pairs[0] as PtyPair).b, second.a, BAUD));
      shelfPath = second.b;
      driverPath = (pairs[0] as PtyPair).a;
    }
    const sim = new ShelfSimulator({ lanes: LANES, noiseGrams: 0.2, baudRate: BAUD });
    await sim.start(shelfPath);
    cleanups.push(() => sim.stop());
    for (let n = 1; n <= LANES; n++) sim.setLoad(n, 355 * (n + 2));

    const transport = new SerialLine({ path: driverPath, baudRate: BAUD, dataBits: 8, parity: 'none', stopBits: 1 });
    const device: DriverDevice = {
      id: 'shelf-1',
      kind: 'smart-shelf',
      options: {
        unitId: 1,
        model: 'ws-4lane-int32',
        pollIntervalMs: 10,
        timeoutMs: 200,
        retries: 1,
        lanes: Array.from({ length: LANES }, (_, i) => ({ lane: i + 1, unitWeightGrams: 355 })),
      },
    };
    const problems = smartShelfDriver.validate(device);
    if (problems.length > 0) throw new Error(`shelf options: ${problems.join('; ')}`);
    let events = 0;
    const ctx: DriverContext<SerialTransport> = {
      device,
      transport,
      log: { debug() {}, info() {}, warn() {}, error() {} },
      now: () => Date.now(),
      emit: (_e: DeviceEvent) => events++,
      seen: () => {},
      setHealth: () => {},
      setInfo: () => {},
      reject: () => {},
      fail: () => {},
    };
    const driver = smartShelfDriver.create(ctx);
    await driver.start(new AbortController().signal);
    cleanups.push(() => driver.stop());
    const counters = async () => ((await driver.execute({ name: 'status' })).data as { counters: Record<string, number> }).counters;

    await sleep(WARMUP_MS);
    const c0 = await counters();
    const t0 = performance.now();
    await sleep(durationMs);
    const c1 = await counters();
    const seconds = (performance.now() - t0) / 1000;
    const transactions = (c1.answers ?? 0) - (c0.answers ?? 0);
    const physical = 1000 / physicalTransactionMs(BAUD);
    return {
      line,
      baudRate: BAUD,
      bitsPerCharacter: Math.round((characterTimeMs(BAUD) * BAUD) / 1000),
      seconds,
      transactions,
      transactionsPerSecond: transactions / seconds,
      lanesPerSecond: (transactions * LANES) / seconds,
      physicalTransactionsPerSecond: physical,
      physicalLanesPerSecond: physical * LANES,
      ratio: transactions / seconds / physical,
      timeouts: (c1.timeouts ?? 0) - (c0.timeouts ?? 0),
      crcErrors: (c1.crcErrors ?? 0) - (c0.crcErrors ?? 0),
      malformed: (c1.malformed ?? 0) - (c0.malformed ?? 0),
      events,
    };
  } finally {
    for (const undo of cleanups.reverse()) await undo().catch(() => {});
  }
}
