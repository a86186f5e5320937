/**
 * The reader's maintenance side, kept apart from tag data: the management interface's responses, the
 * firmware version (asked after every birth message), and firmware updates and rollbacks, one at a
 * time. The driver feeds it the reader's session events (birth, offline) and routes commands to it.
 * The constructor does no I/O; subscribe() starts listening and stop() ends everything it started.
 */
import type { CommandResult, DeviceCommand, DriverContext, MqttTransport, RejectReason, Unsubscribe } from '../../hub/sdk/index.js';
import { ReaderFirmware, type ReaderVersion } from './firmware-update.js';
import { ManagementClient, parseManagementResponse } from './management.js';
import type { ResolvedOptions } from './options.js';

export class ReaderMaintenance {
  /** The firmware operation in progress ('update' or 'rollback'). */
  operation: string | undefined;
  version: ReaderVersion | undefined;
  private readonly client: ManagementClient;
  private readonly firmware: ReaderFirmware;
  private births = 0;
  private birthWaiters: (() => void)[] = [];
  private running = false;

  constructor(
    private readonly ctx: DriverContext<MqttTransport>,
    private readonly o: ResolvedOptions,
    /** Why the reader is offline, or undefined while it is not. */
    offlineReason: () => string | undefined,
    /** Called when `operation` changes, so the driver can recompute health. */
    private readonly changed: () => void,
    private readonly reject: (reason: RejectReason, detail: string) => void,
  ) {
    this.client = new ManagementClient(ctx.transport, o.commands);
    this.firmware = new ReaderFirmware(
      this.client,
      o.firmware,
      // without a status topic no birth message is ever seen: the firmware code then watches the version
      { offlineReason, births: () => (o.status === undefined ? undefined : this.births), nextBirth: (ms) => this.nextBirth(ms) },
      ctx.log,
    );
  }

  /** Listens on the response topic. */
  subscribe(guard: (topic: string, work: () => void) => void): Unsubscribe {
    this.running = true;
    return this.ctx.transport.subscribe(this.o.responses, (topic, payload) => guard(topic, () => this.onResponse(payload)));
  }

  stop(): void {
    this.running = false;
    this.client.cancelAll('stopped', 'the driver stopped');
    for (const wake of this.birthWaiters.splice(0)) wake();
  }

  /** Handles `firmware.update` and `firmware.rollback`; undefined for any other command. */
  execute(command: DeviceCommand): Promise<CommandResult> | CommandResult | undefined {
    if (command.name === 'firmware.update') {
      const image = command.args?.image;
      const version = command.args?.version;
      if (!(image instanceof Uint8Array) || image.length === 0)
        return { ok: false, detail: 'args.image must be a non-empty Buffer holding the firmware image' };
      if (typeof version !== 'string' || version.trim() === '' || version.length > 64)
        return { ok: false, detail: 'args.version must be a non-empty string of at most 64 characters' };
      return this.maintain('update', () => this.firmware.update(image, version, (v) => this.noteVersion(v)));
    }
    if (command.name === 'firmware.rollback') return this.maintain('rollback', () => this.firmware.rollback((v) => this.noteVersion(v)));
    return undefined;
  }

  /** For the `status` command. */
  status(): { version: string; previous: string | undefined; slot: string | undefined; operation: string | undefined } | undefined {
    const v = this.version;
    return v && { version: v.version, previous: v.previous, slot: v.slot, operation: this.operation };
  }

  /** A birth message: whoever waits for the reboot wakes; the reader is asked what it runs. */
  birth(text: string): void {
    this.births++;
    for (const wake of this.birthWaiters.splice(0)) wake();
    const booted = birthVersion(text);
    if (booted !== undefined) this.ctx.setInfo({ firmware: booted });
    // during an operation the operation asks; a reader without a management interface never answers
    if (this.operation !== undefined) return;
    this.firmware.getVersion(1).then(
      (v) => this.noteVersion(v),
      (err: Error) => this.ctx.log.debug({ err: err.message }, 'reader firmware version not known'),
    );
  }

  /** The will or goodbye message: whatever waits for an answer will not get one from this session. */
  offline(reason: string): void {
    this.client.cancelAll('offline', reason);
  }

  private async maintain(name: string, work: () => Promise<CommandResult>): Promise<CommandResult> {
    if (!this.running) return { ok: false, detail: 'the driver is not running' };
    if (this.operation !== undefined) return { ok: false, detail: `a firmware ${this.operation} is already in progress` };
    this.operation = name;
    this.changed();
    try {
      return await work();
    } finally {
      this.operation = undefined;
      this.changed();
    }
  }

  private noteVersion(v: ReaderVersion): void {
    this.version = v;
    this.ctx.setInfo({ firmware: v.version });
  }

  private nextBirth(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.birthWaiters = this.birthWaiters.filter((w) => w !== done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      timer.unref?.();
      this.birthWaiters.push(done);
    });
  }

  private onResponse(payload: Buffer): void {
    const result = parseManagementResponse(payload.toString('utf8'));
    if (!result.ok) {
      this.reject(result.reason, `management response: ${result.detail}`);
      return;
    }
    this.ctx.seen();
    if (!this.client.deliver(result.value)) this.ctx.log.debug({ commandId: result.value.commandId }, 'management response nobody waits for');
  }
}

/** The firmware a birth message names, when it names one (`data.firmwareVersion`: our extension of Zebra's mqttConnEVT). */
function birthVersion(text: string): string | undefined {
  if (!text.trimStart().startsWith('{')) return undefined;
  try {
    const json = JSON.parse(text) as { data?: { firmwareVersion?: unknown } };
    const v = json.data?.firmwareVersion;
    return typeof v === 'string' && v !== '' ? v : undefined;
  } catch {
    return undefined;
  }
}
