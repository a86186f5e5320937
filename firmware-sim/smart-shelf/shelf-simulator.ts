/**
 * A simulated weight-sensing shelf controller: a Modbus RTU slave on a serial port (in tests, one end
 * of a socat pty pair). Lanes hold weights set through the API below; the controller answers polls
 * from its register map and misbehaves on demand through `faults`. It takes firmware updates into
 * A/B slots (firmware-registers.ts), reboots after a commit or rollback (silent for `bootMs`), and can
 * lose power (silent, nothing received, an unfinished transfer lost) until `powerOn()`.
 *
 * Start/stop are symmetric and the constructor does no I/O.
 */
import { SerialPort } from 'serialport';
import { FaultPlan } from './faults.js';
import { FirmwareRegisters } from './firmware-registers.js';
import { SimLane, type LaneSimOptions } from './lane.js';
import { answerRequest, RequestFramer, type SlaveAnswer } from './rtu-slave.js';
import { sealFrame } from './crc.js';
import { FIRMWARE_BASE, ShelfRegisters, type SimModel, type SimWordOrder } from './shelf-registers.js';

export interface ShelfSimulatorOptions extends Partial<LaneSimOptions> {
  unitId?: number;
  model?: SimModel;
  wordOrder?: SimWordOrder;
  /** Lanes fitted to this controller (the models have room for 4). */
  lanes?: number;
  baudRate?: number;
  /** Seed for noise and random faults, so a run can be repeated. */
  seed?: number;
  now?: () => number;
  /** The version the controller runs from the factory (slot A). Default 1.0.0. */
  firmwareVersion?: string;
  /** Largest image a slot holds, bytes. Default 256 KiB. */
  firmwareCapacity?: number;
  /** How long a reboot or power-on keeps the controller silent, ms. Default 2000. */
  bootMs?: number;
  /** An image holding these bytes boots but fails every load cell (data ok cleared). Default SIM-UNHEALTHY. */
  unhealthyMarker?: string;
}

export interface ShelfSimulatorStats {
  requests: number;
  replies: number;
  exceptions: number;
  /** Requests for another unit, or broadcasts. */
  ignored: number;
  /** Requests dropped by the framer for a bad CRC. */
  badFrames: number;
  silenced: number;
  corrupted: number;
  /** Bytes that arrived while the controller was rebooting or without power. */
  unheard: number;
}

/** mulberry32: a tiny seeded PRNG, good enough for noise and fault dice. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export class ShelfSimulator {
  readonly faults: FaultPlan;
  readonly stats: ShelfSimulatorStats = { requests: 0, replies: 0, exceptions: 0, ignored: 0, badFrames: 0, silenced: 0, corrupted: 0, unheard: 0 };
  readonly unitId: number;
  private readonly lanes: SimLane[];
  private readonly registers: ShelfRegisters;
  private readonly fw: FirmwareRegisters;
  private readonly bootMs: number;
  private framer = new RequestFramer();
  /** Rebooting: silent until the boot timer fires. */
  private booting = false;
  private powered = true;
  private readonly now: () => number;
  private readonly baudRate: number;
  private port: SerialPort | undefined;
  private readonly timers = new Set<NodeJS.Timeout>();
  /** The last requests heard (function code and start address), oldest first, for tests that check the order. */
  readonly requestLog: { fc: number; address: number }[] = [];

  constructor(options: ShelfSimulatorOptions = {}) {
    this.now = options.now ?? (() => performance.now());
    const random = seeded(options.seed ?? 1);
    const laneOpts: LaneSimOptions = {
      capacityGrams: options.capacityGrams ?? 10_000,
      motionMs: options.motionMs ?? 400,
      driftGramsPerMinute: options.driftGramsPerMinute ?? 0,
      noiseGrams: options.noiseGrams ?? 0.2,
    };
    const t0 = this.now();
    this.lanes = Array.from({ length: options.lanes ?? 4 }, () => new SimLane(laneOpts, random, t0));
    this.unitId = options.unitId ?? 1;
    this.baudRate = options.baudRate ?? 9600;
    this.faults = new FaultPlan(random);
    const model = options.model ?? 'ws-4lane-int32';
    this.fw = new FirmwareRegisters(FIRMWARE_BASE[model], {
      version: options.firmwareVersion ?? '1.0.0',
      capacity: options.firmwareCapacity ?? 256 * 1024,
      unhealthyMarker: options.unhealthyMarker ?? 'SIM-UNHEALTHY',
    });
    this.fw.slots.boot(); // the factory boot: boot count 1
    this.bootMs = options.bootMs ?? 2000;
    this.registers = new ShelfRegisters(model, options.wordOrder ?? 'high-first', this.lanes, this.now, this.fw);
  }

  /** What the controller's bootloader knows: the running and standby images, boot count, a transfer. */
  get firmware(): { version: string; standby: string | undefined; slot: 'A' | 'B'; healthy: boolean; bootCount: number; receiving: boolean; received: number } {
    const s = this.fw.slots;
    return {
      version: s.running.version,
      standby: s.standby?.version,
      slot: s.active === 0 ? 'A' : 'B',
      healthy: s.running.healthy,
      bootCount: s.bootCount,
      receiving: s.receiving,
      received: s.received,
    };
  }

  /** False while rebooting or without power: the controller hears nothing and answers nothing. */
  get answering(): boolean {
    return this.powered && !this.booting;
  }

  /** Arms a power cut right after the n-th firmware chunk from now is taken (before it is answered). */
  cutPowerAfterChunks(n: number): void {
    this.fw.cutPowerAfterChunks(n);
  }

  /** The next firmware chunk is stored with a bit flipped: the image then fails its CRC-32 at commit. */
  corruptNextChunk(): void {
    this.fw.corruptNextChunk();
  }

  /** The controller loses power: replies in flight die with it, and a transfer in progress is lost. */
  powerOff(): void {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    this.powered = false;
    this.booting = false;
  }

  /** Power returns: the controller boots (silent for `bootMs`) from the slot it last committed to. */
  powerOn(): void {
    if (this.powered) return;
    this.powered = true;
    this.reboot();
  }

  /** Register writes the controller accepted (tare/zero commands), oldest first. */
  get writes(): readonly { address: number; value: number }[] {
    return this.registers.writes;
  }

  get isRunning(): boolean {
    return this.port?.isOpen === true;
  }

  async start(path: string): Promise<void> {
    if (this.port) return;
    const port = new SerialPort({ path, baudRate: this.baudRate, autoOpen: false });
    port.on('error', () => {}); // a vanished pty is the test's business, not a crash
    port.on('data', (chunk: Buffer) => this.onData(chunk));
    await new Promise<void>((resolve, reject) => port.open((err) => (err ? reject(err) : resolve())));
    this.port = port;
  }

  async stop(): Promise<void> {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    const port = this.port;
    this.port = undefined;
    if (port?.isOpen) await new Promise<void>((resolve) => port.close(() => resolve()));
  }

  lane(n: number): SimLane {
    const lane = this.lanes[n - 1];
    if (lane === undefined) throw new RangeError(`no lane ${n} (1..${this.lanes.length})`);
    return lane;
  }

  /** Puts `count` items of `grams` each on lane `n`; the reading swings (motion) before it settles. */
  place(n: number, grams: number, count = 1): void {
    const lane = this.lane(n);
    lane.set(lane.grams + grams * count, this.now());
  }

  remove(n: number, grams: number, count = 1): void {
    const lane = this.lane(n);
    lane.set(lane.grams - grams * count, this.now());
  }

  setLoad(n: number, grams: number): void {
    this.lane(n).set(grams, this.now());
  }

  /** A hand on lane `n` (true) or taken away (false): motion until released, whatever the timing. */
  touch(n: number, on: boolean): void {
    this.lane(n).touched = on;
  }

  /** A lane whose load cell failed: its status loses the data-ok bit. */
  setDataOk(n: number, ok: boolean): void {
    this.lane(n).dataOk = ok;
  }

  /** Unsolicited bytes on the bus, between frames. */
  babble(bytes: Buffer): void {
    this.port?.write(bytes);
  }

  private reboot(): void {
    this.booting = true;
    this.later(() => {
      this.booting = false;
      this.framer = new RequestFramer(); // whatever half a frame it held died with the reboot
      this.fw.slots.boot();
    }, this.bootMs);
  }

  private onData(chunk: Buffer): void {
    if (!this.answering) {
      this.stats.unheard += chunk.length;
      return;
    }
    const before = this.framer.badFrames;
    const frames = this.framer.push(chunk, this.now());
    this.stats.badFrames += this.framer.badFrames - before;
    for (const frame of frames) {
      if (!this.answering) break;
      this.stats.requests++;
      this.requestLog.push({ fc: frame[1]!, address: frame.readUInt16BE(2) });
      if (this.requestLog.length > 5000) this.requestLog.splice(0, 1000);
      const answer = answerRequest(frame, this.unitId, this.registers);
      if (this.fw.powerCutDue) {
        this.fw.powerCutDue = false;
        this.powerOff();
        break;
      }
      this.reply(frame, answer);
      if (this.fw.rebootRequested) {
        // the answer to COMMIT/ROLLBACK is on its way (or lost to a fault); then the controller boots
        this.fw.rebootRequested = false;
        this.reboot();
      }
    }
  }

  private reply(frame: Buffer, answer: SlaveAnswer): void {
    if (answer.kind === 'silent') {
      this.stats.ignored++;
      return;
    }
    const fate = this.faults.decide(frame[1]!);
    if (fate.silent) {
      this.stats.silenced++;
      return;
    }
    let reply = answer.frame;
    if (fate.exception !== undefined) reply = sealFrame(Buffer.from([frame[0]!, frame[1]! | 0x80, fate.exception]));
    if (fate.exception !== undefined || answer.kind === 'exception') this.stats.exceptions++;
    if (fate.corruptCrc) {
      reply = Buffer.from(reply);
      reply[reply.length - 1] = reply[reply.length - 1]! ^ 0x5a;
      this.stats.corrupted++;
    }
    const send = () => {
      if (fate.garbage) this.port?.write(fate.garbage);
      if (fate.fragment) this.writeInPieces(reply);
      else this.port?.write(reply);
      this.stats.replies++;
    };
    // a real controller answers after its own turnaround; here no delay unless asked for
    if (fate.delayMs > 0) this.later(send, fate.delayMs);
    else send();
  }

  private writeInPieces(frame: Buffer): void {
    let at = 0;
    let delay = 0;
    while (at < frame.length) {
      const piece = frame.subarray(at, at + 1 + (at % 3));
      at += piece.length;
      this.later(() => this.port?.write(piece), delay);
      delay += 2;
    }
  }

  private later(fn: () => void, ms: number): void {
    const t = setTimeout(() => {
      this.timers.delete(t);
      fn();
    }, ms);
    this.timers.add(t);
  }
}
