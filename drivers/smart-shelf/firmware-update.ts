/**
 * Firmware update and rollback of one shelf controller over its firmware area (firmware-area.ts):
 * BEGIN (size, CRC-32, version), chunks of up to 240 bytes in order, COMMIT; the controller verifies
 * the image, answers, reboots into the other slot (A/B) and comes back with a new boot count and the
 * new version. Every step goes through the bus master's queue, so it never interleaves with anything.
 *
 * Failing cleanly is the point: the controller activates nothing before a verified COMMIT, so any
 * failure before that leaves it on its old image; this code then sends a best-effort ABORT and says
 * why, in words store IT can act on. Nothing here throws to the caller.
 */
import type { CommandResult, DriverLogger } from '../../hub/sdk/index.js';
import { crc32 } from './crc32.js';
import { beginRequest, CHUNK_BYTES, chunkRequest, decodeStatus, type FirmwareStatus, fwCommandRequest, fwErrorText, statusRequest } from './firmware-area.js';
import type { ModbusMaster } from './modbus-master.js';
import { isModbusError, type ModbusRequest } from './modbus-rtu.js';
import type { ShelfModel } from './register-map.js';

export interface ShelfFirmwareOptions {
  /** Extra attempts for one chunk (or begin/commit) after a time-out, CRC error or garbled answer. */
  chunkRetries: number;
  /** How long the controller may take to reboot and answer again after COMMIT or ROLLBACK. */
  rebootTimeoutMs: number;
}

/** What went wrong, as the sentence the caller gets in `detail`. */
class FirmwareFailure extends Error {}

/** Pause between probes of a rebooting controller: short against a boot, long against a bus turnaround. */
const PROBE_GAP_MS = 50;

export class ShelfFirmware {
  constructor(
    private readonly master: ModbusMaster,
    private readonly model: ShelfModel,
    private readonly unit: number,
    private readonly opts: ShelfFirmwareOptions,
    private readonly log: DriverLogger,
  ) {}

  /** One read of the status block; rejects with the master's ModbusError. */
  async readStatus(retries?: number): Promise<FirmwareStatus> {
    const res = await this.master.request(statusRequest(this.model, this.unit), retries);
    if (!('registers' in res)) throw new Error('the firmware status read returned no registers');
    return decodeStatus(res.registers);
  }

  async update(image: Uint8Array, version: string, onStatus: (s: FirmwareStatus) => void): Promise<CommandResult> {
    let before: FirmwareStatus | undefined;
    let committing = false;
    try {
      before = await this.step('read the firmware status', () => this.readStatus(this.opts.chunkRetries));
      if (before.capacity > 0 && image.length > before.capacity)
        throw new FirmwareFailure(`the image (${image.length} bytes) is larger than the shelf's firmware slot (${before.capacity} bytes)`);
      const crc = crc32(image);
      await this.write('begin', beginRequest(this.model, this.unit, image.length, crc, version));
      for (let offset = 0; offset < image.length; offset += CHUNK_BYTES) {
        const chunk = image.subarray(offset, Math.min(offset + CHUNK_BYTES, image.length));
        await this.write(`chunk at byte ${offset} of ${image.length}`, chunkRequest(this.model, this.unit, offset, chunk));
      }
      this.log.info({ bytes: image.length, crc32: crc.toString(16).padStart(8, '0'), version }, 'firmware image sent; committing');
      committing = true;
      const after = await this.commitAndReboot('commit', before);
      onStatus(after);
      if (after.version !== version)
        throw new FirmwareFailure(`the shelf rebooted but runs ${show(after.version)}, not ${version}: its bootloader kept the old image`);
      return { ok: true, data: { version: after.version, previous: after.standby, slot: after.slot, bytes: image.length } };
    } catch (err) {
      return this.failed(err, before, !committing);
    }
  }

  async rollback(onStatus: (s: FirmwareStatus) => void): Promise<CommandResult> {
    let before: FirmwareStatus | undefined;
    try {
      before = await this.step('read the firmware status', () => this.readStatus(this.opts.chunkRetries));
      if (before.standby === '') throw new FirmwareFailure(`the shelf has no previous image to roll back to (it runs ${show(before.version)})`);
      const after = await this.commitAndReboot('rollback', before);
      onStatus(after);
      if (after.version !== before.standby)
        throw new FirmwareFailure(`the shelf rebooted but runs ${show(after.version)}, not the previous image ${before.standby}`);
      return { ok: true, data: { version: after.version, previous: after.standby, slot: after.slot } };
    } catch (err) {
      return this.failed(err, before, false);
    }
  }

  /**
   * COMMIT or ROLLBACK, then wait for the reboot. The answer to the command can be lost, and a retry can
   * reach the controller after it has rebooted (it then refuses: nothing to commit). So neither a time-out
   * nor an exception is taken at face value: the boot count decides whether the controller rebooted.
   */
  private async commitAndReboot(command: 'commit' | 'rollback', before: FirmwareStatus): Promise<FirmwareStatus> {
    let refusal: string | undefined;
    try {
      await this.master.request(fwCommandRequest(this.model, this.unit, command), this.opts.chunkRetries);
    } catch (err) {
      if (!isModbusError(err) || err.kind === 'closed') throw err;
      if (err.kind === 'exception') refusal = err.message;
    }
    if (refusal !== undefined) {
      // a refusal normally comes before any reboot: the last-error register says why
      const now = await this.readStatus(this.opts.chunkRetries).catch(() => undefined);
      if (now === undefined || now.bootCount === before.bootCount) {
        const why = now ? fwErrorText(now.lastError) : refusal;
        throw new FirmwareFailure(`the shelf refused the ${command}: ${why}; it keeps running ${show(before.version)}`);
      }
      return now;
    }
    const deadline = performance.now() + this.opts.rebootTimeoutMs;
    while (performance.now() < deadline) {
      try {
        // one attempt per probe: a rebooting controller is silent, and the loop is the retry
        const now = await this.readStatus(0);
        if (now.bootCount !== before.bootCount) return now;
      } catch (err) {
        if (!isModbusError(err) || err.kind === 'closed') throw err;
      }
      await new Promise((r) => setTimeout(r, PROBE_GAP_MS));
    }
    throw new FirmwareFailure(`the shelf did not come back within ${this.opts.rebootTimeoutMs} ms after the ${command}`);
  }

  /** A firmware write; an exception is explained by the controller's last-error register. */
  private async write(what: string, req: ModbusRequest): Promise<void> {
    try {
      await this.master.request(req, this.opts.chunkRetries);
    } catch (err) {
      if (!isModbusError(err) || err.kind === 'closed') throw err;
      if (err.kind !== 'exception') {
        const attempts = this.opts.chunkRetries + 1;
        throw new FirmwareFailure(`the shelf stopped answering during the transfer (${what}): ${err.message}, ${attempts} attempt${attempts === 1 ? '' : 's'}`);
      }
      const status = await this.readStatus(0).catch(() => undefined);
      throw new FirmwareFailure(`the shelf refused the ${what}: ${status ? fwErrorText(status.lastError) : err.message}`);
    }
  }

  private async step<T>(what: string, run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (err) {
      if (isModbusError(err, 'closed')) throw err;
      throw new FirmwareFailure(`could not ${what}: ${(err as Error).message}`);
    }
  }

  /** `transferring`: the failure came before COMMIT, so the controller still runs what it ran before. */
  private async failed(err: unknown, before: FirmwareStatus | undefined, transferring: boolean): Promise<CommandResult> {
    if (isModbusError(err, 'closed')) return { ok: false, detail: 'the driver stopped during the firmware operation' };
    if (!(err instanceof FirmwareFailure)) {
      this.log.error({ err: (err as Error).message }, 'firmware operation failed unexpectedly');
      return { ok: false, detail: `firmware operation failed: ${(err as Error).message}` };
    }
    let detail = err.message;
    if (before !== undefined && transferring) {
      // nothing was committed: tell the controller to drop what it got (it may be gone; that is fine too)
      await this.master.request(fwCommandRequest(this.model, this.unit, 'abort'), 0).catch(() => undefined);
      detail += `; the shelf keeps running ${show(before.version)} (nothing is activated before a verified commit)`;
    }
    this.log.warn({ detail }, 'firmware operation failed');
    return { ok: false, detail, ...(before && transferring ? { data: { version: before.version } } : {}) };
  }
}

const show = (version: string): string => (version === '' ? 'an unnamed version' : version);
