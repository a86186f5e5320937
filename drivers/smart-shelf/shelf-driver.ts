/**
 * The smart-shelf driver: polls every configured lane of one Modbus RTU shelf controller, turns weights
 * into stable readings and counts, and reports them as events, conditions and device health. Firmware
 * updates and rollbacks (firmware-update.ts) pause the polling while they hold the bus.
 *
 * Nothing here throws out of the polling loop: a bad frame is counted (ctx.reject), a silent shelf goes
 * offline and comes back, and only a vanished serial line (an unplugged adapter) is a failure (ctx.fail)
 * that the supervisor answers with a restart.
 */
import type { CommandResult, DeviceCommand, DeviceHealth, Driver, DriverContext, SerialTransport, Unsubscribe } from '../../hub/sdk/index.js';
import type { LaneOptions, ShelfOptions } from './index.js';
import { type FirmwareStatus, versionProblem } from './firmware-area.js';
import { ShelfFirmware } from './firmware-update.js';
import { ModbusMaster } from './modbus-master.js';
import { isModbusError } from './modbus-rtu.js';
import { commandRequest, decodeLane, readRequest, type LaneReading, type ShelfCommand } from './register-map.js';

/** What one poll came to, remembered for a window of polls to judge health. */
type PollOutcome = { answered: 'ok' | 'exception' | 'garbled' | 'silent'; crc: number; exceptions: number; timeouts: number; malformed: number };

const HEALTH_WINDOW_POLLS = 10;
const DEFAULT_BAUD = 9600;

interface LaneState {
  readonly cfg: LaneOptions;
  reading: LaneReading | undefined;
  window: number[];
  stableGrams: number | undefined;
  count: number | undefined;
  active: Map<string, boolean>;
}

export class ShelfDriver implements Driver {
  private readonly lanes: LaneState[];
  private master: ModbusMaster | undefined;
  private offClose: Unsubscribe | undefined;
  private running = false;
  private failed = false;
  private loop: Promise<void> | undefined;
  private stopping: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  private readonly outcomes: PollOutcome[] = [];
  private health: DeviceHealth | undefined;
  private firmware: ShelfFirmware | undefined;
  /** Set while a firmware operation holds the bus; the poll loop waits for it. */
  private maintenance: { name: string; done: Promise<void> } | undefined;
  private firmwareStatus: FirmwareStatus | undefined;
  /** Read the firmware status before the next poll: at start, and whenever the shelf comes back. */
  private firmwareStale = true;

  constructor(
    private readonly ctx: DriverContext<SerialTransport>,
    private readonly opts: ShelfOptions,
  ) {
    this.lanes = opts.lanes.map((cfg) => ({ cfg, reading: undefined, window: [], stableGrams: undefined, count: undefined, active: new Map() }));
  }

  async start(signal: AbortSignal): Promise<void> {
    if (this.running) return;
    signal.throwIfAborted();
    this.stopping = undefined;
    const line = this.ctx.transport;
    await line.open();
    if (signal.aborted) {
      await line.close();
      signal.throwIfAborted();
    }
    this.failed = false;
    this.offClose = line.onClose((err) => this.lineClosed(err));
    // the SDK's transport does not carry its settings; SerialLine exposes baudRate, other lines may not
    const lineBaud = (line as { baudRate?: unknown }).baudRate;
    const baudRate = this.opts.baudRate ?? (typeof lineBaud === 'number' ? lineBaud : DEFAULT_BAUD);
    this.master = new ModbusMaster(line, { baudRate, timeoutMs: this.opts.timeoutMs, retries: this.opts.retries }, (reason, detail) =>
      this.ctx.reject(reason, detail),
    );
    this.master.attach();
    this.firmware = new ShelfFirmware(this.master, this.opts.model, this.opts.unitId, this.opts.firmware, this.ctx.log);
    this.firmwareStale = true;
    this.ctx.setInfo({ model: this.opts.model.name });
    this.running = true;
    signal.addEventListener('abort', () => void this.stop(), { once: true });
    this.loop = this.pollLoop();
  }

  /** Safe to call twice, concurrently (the supervisor aborts and stops), or before start(). */
  stop(): Promise<void> {
    this.stopping ??= this.release();
    return this.stopping;
  }

  private async release(): Promise<void> {
    this.running = false;
    this.wake?.();
    this.master?.close();
    this.offClose?.();
    this.offClose = undefined;
    await this.loop;
    await this.maintenance?.done;
    this.loop = undefined;
    this.master = undefined;
    this.firmware = undefined;
    await this.ctx.transport.close().catch((err: Error) => this.ctx.log.warn({ err: err.message }, 'closing the serial line failed'));
  }

  async execute(command: DeviceCommand): Promise<CommandResult> {
    if (command.name === 'status') return { ok: true, data: this.status() };
    if (command.name === 'firmware.update') return this.firmwareUpdate(command.args);
    if (command.name === 'firmware.rollback') return this.maintain('rollback', (fw) => fw.rollback((s) => this.noteFirmware(s)));
    if (command.name !== 'tare' && command.name !== 'zero')
      return { ok: false, detail: `unknown command ${command.name} (tare, zero, status, firmware.update, firmware.rollback)` };
    if (this.maintenance) return { ok: false, detail: `the shelf is busy with a firmware ${this.maintenance.name}` };
    const lane = this.lanes.find((l) => l.cfg.lane === command.args?.lane);
    if (lane === undefined) return { ok: false, detail: `args.lane must be one of ${this.lanes.map((l) => l.cfg.lane).join(', ')}` };
    const master = this.master;
    if (!this.running || master === undefined) return { ok: false, detail: 'the driver is not running' };
    try {
      await master.request(commandRequest(this.opts.model, this.opts.unitId, lane.cfg.lane, command.name as ShelfCommand));
    } catch (err) {
      return { ok: false, detail: (err as Error).message };
    }
    // the weight jumps: start the stability window and the change detection afresh
    lane.window = [];
    lane.stableGrams = undefined;
    return { ok: true, detail: `${command.name} sent to lane ${lane.cfg.lane}` };
  }

  /** A snapshot of every lane (last reading, stable weight and count), health and firmware. No bus traffic. */
  status(): {
    lanes: Record<string, unknown>[];
    counters: Record<string, number> | undefined;
    health: DeviceHealth | undefined;
    firmware: { version: string; previous: string; slot: string; operation: string | undefined } | undefined;
  } {
    const fw = this.firmwareStatus;
    return {
      lanes: this.lanes.map((l) => ({ lane: l.cfg.lane, sku: l.cfg.sku, reading: l.reading, stableGrams: l.stableGrams, count: l.count })),
      counters: this.master ? { ...this.master.counters } : undefined,
      health: this.health,
      firmware: fw && { version: fw.version, previous: fw.standby, slot: fw.slot, operation: this.maintenance?.name },
    };
  }

  private firmwareUpdate(args: Record<string, unknown> | undefined): Promise<CommandResult> | CommandResult {
    const image = args?.image;
    if (!(image instanceof Uint8Array) || image.length === 0) return { ok: false, detail: 'args.image must be a non-empty Buffer holding the firmware image' };
    const problem = versionProblem(args?.version);
    if (problem) return { ok: false, detail: problem };
    const version = args?.version as string;
    return this.maintain('update', (fw) => fw.update(image, version, (s) => this.noteFirmware(s)));
  }

  /**
   * Runs a firmware operation with the bus to itself: the poll loop waits (a poll in flight finishes
   * first, the master's queue sees to that), health says why the shelf is not polled, and afterwards
   * the probes of a rebooting shelf do not count as unanswered polls.
   */
  private async maintain(name: string, work: (fw: ShelfFirmware) => Promise<CommandResult>): Promise<CommandResult> {
    const fw = this.firmware;
    if (!this.running || fw === undefined) return { ok: false, detail: 'the driver is not running' };
    if (this.maintenance) return { ok: false, detail: `a firmware ${this.maintenance.name} is already in progress` };
    let finish = () => {};
    this.maintenance = { name, done: new Promise<void>((resolve) => (finish = resolve)) };
    this.health = { availability: 'degraded', reason: `firmware ${name} in progress; polling paused` };
    this.ctx.setHealth(this.health);
    try {
      return await work(fw);
    } finally {
      this.maintenance = undefined;
      this.outcomes.length = 0;
      // a rebooted controller's readings start over: no stability window spans the gap
      for (const lane of this.lanes) lane.window = [];
      finish();
    }
  }

  private noteFirmware(status: FirmwareStatus): void {
    this.firmwareStatus = status;
    if (status.version !== '') this.ctx.setInfo({ firmware: status.version });
  }

  /** Best effort: a controller without a firmware area answers with an exception, and is not asked again. */
  private async refreshFirmware(): Promise<void> {
    this.firmwareStale = false;
    try {
      this.noteFirmware(await (this.firmware as ShelfFirmware).readStatus());
    } catch (err) {
      this.ctx.log.debug({ err: (err as Error).message }, 'firmware status not read');
    }
  }

  private async pollLoop(): Promise<void> {
    while (this.running) {
      if (this.maintenance) {
        await this.maintenance.done;
        continue;
      }
      const began = performance.now();
      try {
        if (this.firmwareStale) await this.refreshFirmware();
        await this.pollOnce();
      } catch (err) {
        // a bug in our own code must not kill polling: log it and carry on with the next cycle
        this.ctx.log.error({ err: (err as Error).message }, 'smart-shelf poll failed');
      }
      const left = this.opts.pollIntervalMs - (performance.now() - began);
      if (this.running) await this.sleep(Math.max(1, left));
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.wake = done;
    });
  }

  private async pollOnce(): Promise<void> {
    const master = this.master;
    if (master === undefined) return;
    const before = { ...master.counters };
    const req = readRequest(
      this.opts.model,
      this.opts.unitId,
      this.lanes.map((l) => l.cfg.lane),
    );
    let answered: PollOutcome['answered'] = 'ok';
    try {
      const res = await master.request(req);
      if ('registers' in res) this.ingest(res.registers, req.address);
      this.ctx.seen();
    } catch (err) {
      if (!this.running) return;
      if (!isModbusError(err)) throw err;
      if (err.kind === 'closed') return this.lineClosed(err);
      if (err.kind === 'exception') this.ctx.seen();
      answered = err.kind === 'exception' ? 'exception' : err.kind === 'timeout' ? 'silent' : 'garbled';
    }
    const c = master.counters;
    this.outcomes.push({
      answered,
      crc: c.crcErrors - before.crcErrors,
      exceptions: c.exceptions - before.exceptions,
      timeouts: c.timeouts - before.timeouts,
      malformed: c.malformed - before.malformed,
    });
    if (this.outcomes.length > HEALTH_WINDOW_POLLS) this.outcomes.shift();
    this.updateHealth();
  }

  private ingest(registers: number[], blockAddress: number): void {
    for (const lane of this.lanes) {
      const r = decodeLane(this.opts.model, this.opts.wordOrder, registers, blockAddress, lane.cfg.lane);
      lane.reading = r;
      this.condition(lane, 'shelf.over-capacity', r.overCapacity, { grams: r.grams });
      if (!r.dataOk || r.motion) {
        // the motion bit says the scale has not settled: a weight counts only after N calm readings
        lane.window = [];
        continue;
      }
      lane.window.push(r.grams);
      if (lane.window.length > this.opts.stableReadings) lane.window.shift();
      if (lane.window.length < this.opts.stableReadings) continue;
      const spread = Math.max(...lane.window) - Math.min(...lane.window);
      if (spread > this.opts.stableToleranceGrams) continue;
      const grams = Math.round((lane.window.reduce((a, b) => a + b, 0) / lane.window.length) * 10) / 10;
      const stock = this.countOf(lane, grams);
      // report a change: of weight beyond the tolerance, or of the count (items lighter than the tolerance)
      const same = lane.stableGrams !== undefined && Math.abs(grams - lane.stableGrams) <= this.opts.stableToleranceGrams;
      if (same && stock.count === lane.count && stock.wrongItem === lane.active.get('shelf.wrong-item')) continue;
      lane.stableGrams = grams;
      this.ctx.emit({
        type: 'shelf.weight',
        deviceId: this.ctx.device.id,
        time: this.ctx.now(),
        lane: lane.cfg.lane,
        grams,
        stable: true,
        flags: { motion: r.motion, overCapacity: r.overCapacity, dataOk: r.dataOk },
        // a weight that is no multiple of the unit weight is not a count the stock ledger should learn
        ...(stock.wrongItem ? {} : { count: stock.count }),
        ...(lane.cfg.sku === undefined ? {} : { sku: lane.cfg.sku }),
      });
      this.judgeStock(lane, grams, stock);
    }
  }

  /** count = round((net - tare) / unit weight); the residual tells a wrong item (PROTOCOLS.md, smart shelves). */
  private countOf(lane: LaneState, grams: number): { count: number; residual: number; wrongItem: boolean } {
    const { unitWeightGrams: unit, tareGrams } = lane.cfg;
    const net = grams - tareGrams;
    const count = Math.max(0, Math.round(net / unit));
    const residual = net - count * unit;
    return { count, residual, wrongItem: Math.abs(residual) > this.opts.itemTolerance * unit };
  }

  private judgeStock(lane: LaneState, grams: number, { count, residual, wrongItem }: { count: number; residual: number; wrongItem: boolean }): void {
    const { lowStock, lowStockClear } = lane.cfg;
    lane.count = count;
    const detail = { grams, count };
    this.condition(lane, 'shelf.wrong-item', wrongItem, { ...detail, residualGrams: Math.round(residual * 10) / 10 });
    this.condition(lane, 'shelf.out-of-stock', count === 0, detail);
    if (lowStock !== undefined && lowStockClear !== undefined) {
      const was = lane.active.get('shelf.low-stock') === true;
      // hysteresis: alert at or below lowStock, clear only at or above lowStockClear
      const now = was ? count < lowStockClear : count <= lowStock;
      this.condition(lane, 'shelf.low-stock', now, { ...detail, lowStock, lowStockClear });
    }
  }

  /** Emits a device.condition on each change of a lane's condition, active or cleared. */
  private condition(lane: LaneState, condition: string, active: boolean, detail: Record<string, unknown>): void {
    if ((lane.active.get(condition) ?? false) === active) return;
    lane.active.set(condition, active);
    this.ctx.emit({
      type: 'device.condition',
      deviceId: this.ctx.device.id,
      time: this.ctx.now(),
      condition,
      detail: { lane: lane.cfg.lane, sku: lane.cfg.sku, active, ...detail },
    });
  }

  private updateHealth(): void {
    // a firmware operation owns the health until it ends
    if (this.maintenance) return;
    const recent = this.outcomes.slice(-this.opts.offlineAfterPolls);
    let next: DeviceHealth;
    if (recent.length === this.opts.offlineAfterPolls && recent.every((o) => o.answered === 'silent')) {
      next = { availability: 'offline', reason: `no answer from unit ${this.opts.unitId} for ${recent.length} polls` };
    } else {
      const problems: string[] = [];
      const sum = (k: 'crc' | 'exceptions' | 'timeouts' | 'malformed') => this.outcomes.reduce((a, o) => a + o[k], 0);
      const tally: [number, string][] = [
        [sum('crc'), 'CRC error'],
        [sum('exceptions'), 'exception response'],
        [sum('timeouts'), 'timeout'],
        [sum('malformed'), 'malformed answer'],
      ];
      const counted = tally.filter(([n]) => n > 0).map(([n, what]) => `${n} ${what}${n === 1 ? '' : 's'}`);
      if (counted.length > 0) problems.push(`${counted.join(', ')} in the last ${HEALTH_WINDOW_POLLS} polls`);
      const notOk = this.lanes.filter((l) => l.reading !== undefined && !l.reading.dataOk).map((l) => l.cfg.lane);
      if (notOk.length > 0) problems.push(`lane${notOk.length === 1 ? '' : 's'} ${notOk.join(', ')} report${notOk.length === 1 ? 's' : ''} data not ok`);
      next = problems.length > 0 ? { availability: 'degraded', reason: problems.join('; ') } : { availability: 'online' };
    }
    if (this.health?.availability === next.availability && this.health.reason === next.reason) return;
    // back from offline: it may have been power-cycled or re-flashed by hand, so ask what it runs
    if (this.health?.availability === 'offline') this.firmwareStale = true;
    this.health = next;
    this.ctx.setHealth(next);
  }

  /** The line went away underneath us (unplugged adapter): only the supervisor can bring it back. */
  private lineClosed(err?: Error): void {
    if (!this.running || this.failed) return;
    this.failed = true;
    this.running = false;
    this.wake?.();
    this.master?.close();
    this.ctx.fail(err ?? new Error('the serial line closed'));
  }
}
