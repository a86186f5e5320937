/**
 * Checks a device's id and secret. scrypt makes a check cost ~40 ms of a pool thread, so:
 * at most `maxPending` checks run at once (the rest are refused with "server unavailable" and retry
 * later), and a successful check is remembered by a fast hash of the secret until the stored hash
 * changes, so a reconnect storm of known devices costs microseconds per device, not scrypt each.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { DeviceCredential, DeviceCredentials } from '../store/device-credentials.js';
import { hashSecret, sha256, verifySecret } from '../store/secrets.js';

export type AuthOutcome = { ok: true; credential: DeviceCredential } | { ok: false; reason: 'unknown_device' | 'bad_secret' | 'busy' };

const CACHE_LIMIT = 10_000;

/** A hash of a random secret, made once: what unknown device ids are checked against. */
let decoy: Promise<string> | undefined;
const decoyHash = (): Promise<string> => (decoy ??= hashSecret(randomBytes(24).toString('base64url')));

export class DeviceAuthenticator {
  private pending = 0;
  /** deviceId -> { stored scrypt hash it was verified against, sha256 of the secret } */
  private readonly verified = new Map<string, { storedHash: string; fast: Buffer }>();

  constructor(
    private readonly credentials: DeviceCredentials,
    private readonly maxPending: number,
  ) {}

  async check(deviceId: string, secret: string): Promise<AuthOutcome> {
    const credential = this.credentials.get(deviceId);
    if (!credential) {
      // Answered only after the same scrypt work a wrong secret costs (and under the same limit):
      // a fast refusal would tell a scanner on the store LAN which device ids exist.
      if (this.pending >= this.maxPending) return { ok: false, reason: 'busy' };
      this.pending++;
      try {
        await verifySecret(secret, await decoyHash());
      } finally {
        this.pending--;
      }
      return { ok: false, reason: 'unknown_device' };
    }
    const fast = Buffer.from(sha256(secret));
    const cached = this.verified.get(deviceId);
    if (cached && cached.storedHash === credential.secretHash) {
      return timingSafeEqual(cached.fast, fast) ? { ok: true, credential } : { ok: false, reason: 'bad_secret' };
    }
    if (this.pending >= this.maxPending) return { ok: false, reason: 'busy' };
    this.pending++;
    try {
      if (!(await verifySecret(secret, credential.secretHash))) return { ok: false, reason: 'bad_secret' };
    } finally {
      this.pending--;
    }
    if (this.verified.size >= CACHE_LIMIT) this.verified.delete(this.verified.keys().next().value as string);
    this.verified.set(deviceId, { storedHash: credential.secretHash, fast });
    return { ok: true, credential };
  }
}
