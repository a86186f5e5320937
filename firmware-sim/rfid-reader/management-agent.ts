/**
 * The simulated reader's management interface: what it does with a command from its command topic,
 * and what it answers on its response topic. Zebra IoT Connector style envelopes (PROTOCOLS.md):
 * commands `{command, command_id, payload}`, responses `{command, command_id, response: "success" |
 * "failure", payload}`. Firmware goes into A/B slots checked with SHA-256 (../common/firmware-slots.ts).
 * Written from drivers/rfid-reader/README.md ("Firmware update"), not from the driver's code.
 */
import { createHash } from 'node:crypto';
import { FirmwareSlots, type SlotError } from '../common/firmware-slots.js';

export interface ManagementAgentOptions {
  version: string;
  capacity: number;
  /** An image holding these bytes boots without a working radio. */
  unhealthyMarker: string;
}

export interface AgentOutcome {
  /** The response to publish; none for a message that cannot be answered (no command_id). */
  response?: Record<string, unknown>;
  /** The command was a chunk that was taken. */
  chunk?: boolean;
  /** A commit or rollback was accepted: reboot once the response is out. */
  reboot?: boolean;
}

const MESSAGES: Record<SlotError, string> = {
  too_large: 'the image is larger than a firmware slot',
  bad_begin: 'size must be positive and version non-empty',
  not_receiving: 'no firmware transfer in progress',
  out_of_order: 'chunks must come in order, inside the announced size',
  incomplete: 'not every byte of the image has arrived',
  checksum_mismatch: 'SHA-256 of the received image does not match the one announced',
  no_previous_image: 'the other slot holds no image to roll back to',
};

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

export class ManagementAgent {
  readonly slots: FirmwareSlots;
  /** The next chunk is stored with a bit flipped (a flash write error): the image then fails its SHA-256. */
  corruptNextChunk = false;

  constructor(opts: ManagementAgentOptions) {
    const marker = Buffer.from(opts.unhealthyMarker);
    this.slots = new FirmwareSlots({
      version: opts.version,
      capacity: opts.capacity,
      digest: (image) => createHash('sha256').update(image).digest('hex'),
      healthy: (image) => marker.length === 0 || !image.includes(marker),
    });
  }

  handle(raw: Buffer): AgentOutcome {
    let msg: unknown;
    try {
      msg = JSON.parse(raw.toString('utf8'));
    } catch {
      return {};
    }
    if (!isRecord(msg) || typeof msg.command_id !== 'string') return {};
    const command = typeof msg.command === 'string' ? msg.command : '';
    const p = isRecord(msg.payload) ? msg.payload : {};
    const reply = (ok: boolean, payload: Record<string, unknown>) => ({ command, command_id: msg.command_id, response: ok ? 'success' : 'failure', payload });
    const refuse = (error: SlotError | 'bad_request' | 'unknown_command', message = MESSAGES[error as SlotError]) => ({
      response: reply(false, { error, message }),
    });
    const s = this.slots;
    switch (command) {
      case 'get_version':
        return {
          response: reply(true, {
            firmwareVersion: s.running.version,
            previousVersion: s.standby?.version ?? '',
            slot: s.active === 0 ? 'A' : 'B',
            bootCount: s.bootCount,
          }),
        };
      case 'firmware_begin': {
        if (typeof p.version !== 'string' || typeof p.size !== 'number' || typeof p.sha256 !== 'string' || !/^[0-9a-fA-F]{64}$/.test(p.sha256))
          return refuse('bad_request', 'firmware_begin needs version (string), size (number) and sha256 (64 hex digits)');
        const error = s.begin(p.size, p.sha256, p.version);
        return error ? refuse(error) : { response: reply(true, { slot: s.active === 0 ? 'B' : 'A', capacity: s.capacity }) };
      }
      case 'firmware_chunk': {
        if (typeof p.offset !== 'number' || typeof p.data !== 'string') return refuse('bad_request', 'firmware_chunk needs offset (number) and data (base64)');
        const data = Buffer.from(p.data, 'base64');
        if (this.corruptNextChunk && data.length > 0) {
          this.corruptNextChunk = false;
          data[0] = data[0]! ^ 0x01;
        }
        const error = s.write(p.offset, data);
        return error ? refuse(error) : { response: reply(true, { received: s.received }), chunk: true };
      }
      case 'firmware_commit': {
        const error = s.commit();
        return error ? refuse(error) : { response: reply(true, { version: s.standby?.version, rebooting: true }), reboot: true };
      }
      case 'firmware_abort':
        s.abort();
        return { response: reply(true, {}) };
      case 'firmware_rollback': {
        const error = s.rollback();
        return error ? refuse(error) : { response: reply(true, { version: s.standby?.version, rebooting: true }), reboot: true };
      }
      default:
        return refuse('unknown_command', `unknown command ${JSON.stringify(command)}`);
    }
  }
}
