/**
 * A/B firmware slots as the simulated devices' bootloaders keep them: one slot runs, the other
 * receives an update. An image is written in order (a repeated chunk, sent again after a lost
 * acknowledgement, is taken again), verified against the checksum announced at the start, and
 * activated only at the next boot after a commit, so a transfer that stops half-way (power cut,
 * cable pulled) leaves the device on the image it ran. A rollback boots the other slot again.
 *
 * The checksum is the device's business (CRC-32 on the shelf, SHA-256 on the reader): it comes in
 * as a function, so this file knows nothing of either protocol. Device code from drivers/ is never used.
 */

export interface SlotImage {
  version: string;
  /** False for an image that boots but does not work (the devices fail their sensors with it). */
  healthy: boolean;
}

export type SlotError = 'too_large' | 'bad_begin' | 'not_receiving' | 'out_of_order' | 'incomplete' | 'checksum_mismatch' | 'no_previous_image';

export interface FirmwareSlotsOptions {
  version: string;
  /** Largest image a slot holds. */
  capacity: number;
  /** The image's checksum, in the form the begin command announces it (compared as strings). */
  digest: (image: Buffer) => string;
  /** Decides whether an image will work once booted (a marker in its bytes, say). */
  healthy: (image: Buffer) => boolean;
}

interface Transfer {
  version: string;
  size: number;
  digest: string;
  image: Buffer;
  received: number;
}

export class FirmwareSlots {
  readonly slots: [SlotImage | undefined, SlotImage | undefined];
  active: 0 | 1 = 0;
  bootCount = 0;
  lastError: SlotError | undefined;
  /** Chunks accepted since power-on, for tests that cut the power part-way. */
  chunks = 0;
  private transfer: Transfer | undefined;
  /** The slot the next boot starts from, set by a commit or a rollback. */
  private pending: 0 | 1 | undefined;

  constructor(private readonly opts: FirmwareSlotsOptions) {
    this.slots = [{ version: opts.version, healthy: true }, undefined];
  }

  get capacity(): number {
    return this.opts.capacity;
  }

  get running(): SlotImage {
    return this.slots[this.active] as SlotImage;
  }

  /** The image a rollback returns to, if the other slot holds one. */
  get standby(): SlotImage | undefined {
    return this.slots[this.other];
  }

  get receiving(): boolean {
    return this.transfer !== undefined;
  }

  get received(): number {
    return this.transfer?.received ?? 0;
  }

  /** Starts receiving into the other slot; a begin during a transfer starts over (the sender restarted). */
  begin(size: number, digest: string, version: string): SlotError | undefined {
    if (size > this.opts.capacity) return this.fail('too_large');
    if (size <= 0 || version.length === 0) return this.fail('bad_begin');
    this.transfer = { version, size, digest: digest.toLowerCase(), image: Buffer.alloc(size), received: 0 };
    this.lastError = undefined;
    return undefined;
  }

  write(offset: number, data: Buffer): SlotError | undefined {
    const t = this.transfer;
    if (!t) return this.fail('not_receiving');
    // in order: the next chunk, or one already received again (its acknowledgement was lost)
    if (offset > t.received || offset + data.length > t.size || data.length === 0) return this.fail('out_of_order');
    data.copy(t.image, offset);
    t.received = Math.max(t.received, offset + data.length);
    this.chunks++;
    return undefined;
  }

  /** Verifies the image; when good, the next boot starts it. A bad image is dropped: send it again. */
  commit(): SlotError | undefined {
    const t = this.transfer;
    if (!t) return this.fail('not_receiving');
    if (t.received < t.size) return this.fail('incomplete');
    this.transfer = undefined;
    if (this.opts.digest(t.image).toLowerCase() !== t.digest) return this.fail('checksum_mismatch');
    this.slots[this.other] = { version: t.version, healthy: this.opts.healthy(t.image) };
    this.pending = this.other;
    this.lastError = undefined;
    return undefined;
  }

  abort(): void {
    this.transfer = undefined;
  }

  rollback(): SlotError | undefined {
    if (this.slots[this.other] === undefined) return this.fail('no_previous_image');
    this.transfer = undefined;
    this.pending = this.other;
    return undefined;
  }

  /** Power-on or reboot: a transfer in progress is lost; a committed image or a rollback takes effect. */
  boot(): void {
    this.transfer = undefined;
    if (this.pending !== undefined) this.active = this.pending;
    this.pending = undefined;
    this.bootCount++;
    this.chunks = 0;
  }

  private get other(): 0 | 1 {
    return this.active === 0 ? 1 : 0;
  }

  private fail(error: SlotError): SlotError {
    this.lastError = error;
    return error;
  }
}
