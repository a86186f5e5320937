/**
 * An in-memory DeviceCommander whose devices behave like the documented commands: `status`,
 * `firmware.update { image: Buffer, version }` (the device then reports the new version),
 * `firmware.rollback` (back to the version before), and any other command answered ok. Faults are
 * set per device; `block` holds a device's commands until released, to catch jobs mid-flight.
 */
import type { DeviceCommander } from '../../hub/ops/device-commander.js';
import type { CommandResult, DeviceCommand } from '../../hub/sdk/driver.js';

export interface FakeDevice {
  firmware?: string;
  /** `status` answers ok (default true). */
  healthy?: boolean;
  /** firmware.update answers ok: false with this detail. */
  failUpdate?: string;
  /** After an update the device reports this version instead of the one sent (a bad image). */
  bootsVersion?: string;
  /** After an update `status` fails. */
  unhealthyAfterUpdate?: boolean;
  /** Boots the new image and answers `status`, but the registry shows it degraded with this reason. */
  degradedAfterUpdate?: string;
  degraded?: string;
}

export interface CommandCall {
  deviceId: string;
  name: string;
  args: Record<string, unknown> | undefined;
  /** Set once the command has answered. */
  answered: boolean;
}

export class FakeCommander implements DeviceCommander {
  readonly calls: CommandCall[] = [];
  private readonly devices = new Map<string, FakeDevice & { previous?: string }>();
  private readonly gates = new Map<string, Promise<void>>();

  constructor(devices: Record<string, FakeDevice> = {}) {
    for (const [id, d] of Object.entries(devices)) this.devices.set(id, { healthy: true, ...d });
  }

  device(id: string): FakeDevice | undefined {
    return this.devices.get(id);
  }

  /** Holds every command to the device until the returned function is called. */
  block(deviceId: string): () => void {
    let release!: () => void;
    this.gates.set(
      deviceId,
      new Promise<void>((resolve) => {
        release = resolve;
      }),
    );
    return () => {
      this.gates.delete(deviceId);
      release();
    };
  }

  /** Command names sent to one device, in order. */
  sent(deviceId: string): string[] {
    return this.calls.filter((c) => c.deviceId === deviceId).map((c) => c.name);
  }

  async execute(deviceId: string, command: DeviceCommand): Promise<CommandResult> {
    const call: CommandCall = { deviceId, name: command.name, args: command.args, answered: false };
    this.calls.push(call);
    await this.gates.get(deviceId);
    try {
      return this.answer(deviceId, command);
    } finally {
      call.answered = true;
    }
  }

  firmwareVersion(deviceId: string): string | undefined {
    return this.devices.get(deviceId)?.firmware;
  }

  availability(deviceId: string): { availability: string; reason?: string } | undefined {
    const d = this.devices.get(deviceId);
    if (!d) return undefined;
    return d.degraded ? { availability: 'degraded', reason: d.degraded } : { availability: 'online' };
  }

  private answer(deviceId: string, command: DeviceCommand): CommandResult {
    const d = this.devices.get(deviceId);
    if (!d) return { ok: false, detail: `no device ${deviceId}` };
    switch (command.name) {
      case 'status':
        return d.healthy ? { ok: true, data: { firmware: d.firmware } } : { ok: false, detail: 'device not responding' };
      case 'firmware.update': {
        const image = command.args?.image;
        const version = command.args?.version;
        if (!Buffer.isBuffer(image) || typeof version !== 'string') return { ok: false, detail: 'bad firmware.update arguments' };
        if (d.failUpdate) return { ok: false, detail: d.failUpdate };
        d.previous = d.firmware;
        d.firmware = d.bootsVersion ?? version;
        if (d.unhealthyAfterUpdate) d.healthy = false;
        if (d.degradedAfterUpdate) d.degraded = d.degradedAfterUpdate;
        return { ok: true };
      }
      case 'firmware.rollback':
        d.firmware = d.previous;
        d.healthy = true;
        delete d.degraded;
        return { ok: true };
      default:
        return { ok: true, data: { ran: command.name, args: command.args ?? null } };
    }
  }
}
