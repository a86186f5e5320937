/**
 * Firmware update and rollback of a fixed reader over its management interface (management.ts):
 * `firmware_begin` (version, size, SHA-256), `firmware_chunk`s of base64 data in order, each
 * acknowledged before the next (the management interface is synchronous, as Zebra's is), then
 * `firmware_commit`. The reader verifies the SHA-256, answers, reboots into its other slot (A/B),
 * reconnects with a new birth message, and `get_version` shows what it runs.
 *
 * The reader activates nothing before a verified commit, so any failure before it leaves the old image
 * running; this code then sends a best-effort `firmware_abort` and says why. Nothing here throws.
 */
import { createHash } from 'node:crypto';
import type { CommandResult, DriverLogger } from '../../hub/sdk/index.js';
import { isManagementError, type ManagementClient, type ManagementResponse } from './management.js';
import type { ReaderFirmwareOptions } from './options.js';

export interface ReaderVersion {
  version: string;
  /** What a rollback returns to, when the reader says. */
  previous: string | undefined;
  slot: string | undefined;
}

export interface ReaderSession {
  /** Why the reader is offline (its will or goodbye message), or undefined while it is not. */
  offlineReason(): string | undefined;
  /** Birth messages seen so far; undefined when no status topic is configured (then none are seen). */
  births(): number | undefined;
  /** Resolves at the next birth message, or after `ms`. */
  nextBirth(ms: number): Promise<void>;
}

/** A failure, worded for the caller's `detail`. */
class FirmwareFailure extends Error {}

export class ReaderFirmware {
  constructor(
    private readonly client: ManagementClient,
    private readonly opts: ReaderFirmwareOptions,
    private readonly session: ReaderSession,
    private readonly log: DriverLogger,
  ) {}

  /** `get_version`; rejects with a ManagementError or a FirmwareFailure. */
  async getVersion(attempts = this.opts.retries + 1, timeoutMs = this.opts.ackTimeoutMs): Promise<ReaderVersion> {
    const res = await this.send('get_version', {}, 'get_version', attempts, timeoutMs);
    const p = res.payload;
    if (typeof p.firmwareVersion !== 'string' || p.firmwareVersion === '')
      throw new FirmwareFailure('the reader answered get_version without a firmwareVersion');
    return {
      version: p.firmwareVersion,
      previous: typeof p.previousVersion === 'string' && p.previousVersion !== '' ? p.previousVersion : undefined,
      slot: typeof p.slot === 'string' ? p.slot : undefined,
    };
  }

  async update(image: Uint8Array, version: string, onVersion: (v: ReaderVersion) => void): Promise<CommandResult> {
    let before: ReaderVersion | undefined;
    let transferring = false;
    try {
      this.online('the update');
      before = await this.getVersion();
      const sha256 = createHash('sha256').update(image).digest('hex');
      const chunkBytes = this.opts.chunkBytes;
      transferring = true;
      await this.send('firmware_begin', { version, size: image.length, sha256, chunkBytes }, 'the begin command');
      for (let offset = 0; offset < image.length; offset += chunkBytes) {
        const data = Buffer.from(image.subarray(offset, Math.min(offset + chunkBytes, image.length))).toString('base64');
        await this.send('firmware_chunk', { offset, data }, `the transfer (chunk at byte ${offset} of ${image.length})`);
      }
      this.log.info({ bytes: image.length, sha256, version }, 'firmware image sent; committing');
      transferring = false;
      const after = await this.activate('firmware_commit', before, version);
      onVersion(after);
      if (after.version !== version) throw new FirmwareFailure(`the reader rebooted but runs ${after.version}, not ${version}: it kept the old image`);
      return { ok: true, data: { version: after.version, previous: after.previous ?? before.version, slot: after.slot, bytes: image.length } };
    } catch (err) {
      return this.failed(err, before, transferring);
    }
  }

  async rollback(onVersion: (v: ReaderVersion) => void): Promise<CommandResult> {
    let before: ReaderVersion | undefined;
    try {
      this.online('the rollback');
      before = await this.getVersion();
      const after = await this.activate('firmware_rollback', before, before.previous);
      onVersion(after);
      if (before.previous !== undefined && after.version !== before.previous)
        throw new FirmwareFailure(`the reader rebooted but runs ${after.version}, not the previous image ${before.previous}`);
      return { ok: true, data: { version: after.version, previous: after.previous, slot: after.slot } };
    } catch (err) {
      return this.failed(err, before, false);
    }
  }

  /**
   * Commit or rollback, then wait for the reader to come back. A lost answer is no proof of failure (the
   * reader may be rebooting already), so only an explicit refusal fails here; the version decides.
   */
  private async activate(command: 'firmware_commit' | 'firmware_rollback', before: ReaderVersion, expected: string | undefined): Promise<ReaderVersion> {
    const births = this.session.births();
    const what = command === 'firmware_commit' ? 'the commit' : 'the rollback';
    try {
      await this.send(command, {}, what);
    } catch (err) {
      if (err instanceof FirmwareFailure && /refused/.test(err.message)) throw new FirmwareFailure(`${err.message}; it keeps running ${before.version}`);
      if (isManagementError(err, 'stopped')) throw err;
      this.log.warn({ err: (err as Error).message }, `no answer to ${command}; waiting for the reader to come back anyway`);
    }
    const deadline = performance.now() + this.opts.rebootTimeoutMs;
    for (;;) {
      const left = deadline - performance.now();
      if (left <= 0) break;
      const seen = this.session.births();
      // with a status topic, a birth message says the reboot happened; without one, the version must change
      if (seen === undefined || births === undefined || seen > births) {
        try {
          const now = await this.getVersion(1, Math.min(this.opts.ackTimeoutMs, left));
          if (seen !== undefined && births !== undefined) return now;
          if (now.version === expected || (expected === undefined && now.version !== before.version)) return now;
        } catch (err) {
          if (isManagementError(err, 'stopped')) throw err;
        }
      }
      await this.session.nextBirth(Math.min(left, seen === undefined ? 500 : left));
    }
    throw new FirmwareFailure(`the reader did not come back within ${this.opts.rebootTimeoutMs} ms after ${what}`);
  }

  /** One command with retries after a time-out; a failure response or the reader dropping off ends it. */
  private async send(
    command: string,
    payload: Record<string, unknown>,
    what: string,
    attempts = this.opts.retries + 1,
    timeoutMs = this.opts.ackTimeoutMs,
  ): Promise<ManagementResponse> {
    for (let attempt = 1; ; attempt++) {
      let res: ManagementResponse;
      try {
        res = await this.client.request(command, payload, timeoutMs);
      } catch (err) {
        if (!isManagementError(err) || err.kind === 'stopped') throw err;
        if (err.kind === 'offline') throw new FirmwareFailure(`the reader went offline during ${what}: ${err.message}`);
        if (attempt < attempts) continue;
        throw new FirmwareFailure(`the reader stopped answering during ${what}: ${err.message}, ${attempts} attempt${attempts === 1 ? '' : 's'}`);
      }
      if (res.ok) return res;
      const error = typeof res.payload.error === 'string' ? res.payload.error : 'failure';
      const message = typeof res.payload.message === 'string' ? `: ${res.payload.message}` : '';
      throw new FirmwareFailure(`the reader refused ${what}: ${error}${message}`);
    }
  }

  private online(what: string): void {
    const offline = this.session.offlineReason();
    if (offline !== undefined) throw new FirmwareFailure(`the reader is offline (${offline}); ${what} was not started`);
  }

  private async failed(err: unknown, before: ReaderVersion | undefined, transferring: boolean): Promise<CommandResult> {
    if (isManagementError(err, 'stopped')) return { ok: false, detail: 'the driver stopped during the firmware operation' };
    if (!(err instanceof FirmwareFailure)) {
      if (!isManagementError(err)) this.log.error({ err: (err as Error).message }, 'firmware operation failed unexpectedly');
      return { ok: false, detail: `firmware operation failed: ${(err as Error).message}` };
    }
    let detail = err.message;
    if (before !== undefined && transferring) {
      await this.client.tell('firmware_abort');
      detail += `; the reader keeps running ${before.version} (nothing is activated before a verified commit)`;
    }
    this.log.warn({ detail }, 'firmware operation failed');
    return { ok: false, detail, ...(before && transferring ? { data: { version: before.version } } : {}) };
  }
}
