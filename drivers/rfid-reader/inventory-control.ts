/**
 * Starting and stopping a reader's inventory (the `inventory.start` and `inventory.stop` commands):
 *
 * - Impinj, over the reader's REST API on the http-stream transport's base URL and credentials:
 *   `POST /profiles/inventory/presets/{presetId}/start` and `POST /profiles/stop` (Impinj reader
 *   configuration REST API; a stop with nothing running is a no-op). The reader reports the change
 *   itself with an `inventoryStatusEvent` on its event stream.
 * - Zebra, over the IoT Connector's control interface: `{command: 'start' | 'stop', command_id,
 *   payload: {}}` on the control command topic, answered with `{command, command_id, response:
 *   'success' | 'failure', payload}` on the control response topic (PROTOCOLS.md; the same envelope as
 *   the management interface, so management.ts's client matches the answers).
 *
 * An Impinj reader on MQTT has no REST client here (a driver reaches its device only through its
 * transport), so these commands need its http-stream transport.
 */
import type { CommandResult, DeviceCommand, DriverContext, HttpStreamTransport, MqttTransport, RejectReason, Unsubscribe } from '../../hub/sdk/index.js';
import { isManagementError, ManagementClient, parseManagementResponse } from './management.js';
import { PRESET_ID, type ResolvedOptions } from './options.js';
import { isRecord } from './payload.js';

/** How long a Zebra reader may take to answer a control command. */
export const CONTROL_TIMEOUT_MS = 10_000;

export type InventoryState = 'running' | 'idle' | 'unknown';

export class InventoryControl {
  private readonly client: ManagementClient | undefined;

  constructor(
    private readonly ctx: DriverContext<MqttTransport | HttpStreamTransport>,
    private readonly o: ResolvedOptions,
    /** Why the reader is offline, or undefined while it is not. */
    private readonly offlineReason: () => string | undefined,
    /** A start or stop the reader accepted. */
    private readonly changed: (state: 'running' | 'idle') => void,
    private readonly reject: (reason: RejectReason, detail: string) => void,
  ) {
    const t = ctx.transport;
    if (o.vendor === 'zebra' && t.type === 'mqtt' && o.controlCommands) this.client = new ManagementClient(t, o.controlCommands);
  }

  /** Zebra: listens on the control response topic. Nothing to listen to for Impinj (REST answers inline). */
  subscribe(guard: (topic: string, work: () => void) => void): Unsubscribe | undefined {
    const t = this.ctx.transport;
    const topic = this.o.controlResponses;
    if (!this.client || t.type !== 'mqtt' || !topic) return undefined;
    return t.subscribe(topic, (from, payload) => guard(from, () => this.onResponse(payload)));
  }

  stop(): void {
    this.client?.cancelAll('stopped', 'the driver stopped');
  }

  /** The reader dropped off: control commands waiting for an answer will not get one. */
  offline(reason: string): void {
    this.client?.cancelAll('offline', reason);
  }

  /** Handles `inventory.start` and `inventory.stop`; undefined for any other command. */
  execute(command: DeviceCommand): Promise<CommandResult> | CommandResult | undefined {
    if (command.name !== 'inventory.start' && command.name !== 'inventory.stop') return undefined;
    const start = command.name === 'inventory.start';
    const offline = this.offlineReason();
    if (offline !== undefined) return { ok: false, detail: `the reader is offline: ${offline}` };
    if (this.o.vendor === 'zebra') {
      if (command.args?.preset !== undefined)
        return { ok: false, detail: 'args.preset is for Impinj readers: a Zebra reader starts its configured operating mode' };
      return this.zebra(start ? 'start' : 'stop');
    }
    const t = this.ctx.transport;
    if (t.type !== 'http-stream')
      return {
        ok: false,
        detail: `${command.name} on an Impinj reader uses its REST API: give the device transport type http-stream (url, username, password) instead of mqtt`,
      };
    if (!start) return this.impinj(t, '/profiles/stop', 'stop', undefined);
    const preset = command.args?.preset ?? this.o.inventoryPreset;
    if (preset === undefined) return { ok: false, detail: 'args.preset is required (the Impinj preset to run), or set options.inventoryPreset' };
    if (typeof preset !== 'string' || !PRESET_ID.test(preset))
      return { ok: false, detail: 'args.preset must be a preset id (letters, digits, . _ -; at most 64)' };
    return this.impinj(t, `/profiles/inventory/presets/${encodeURIComponent(preset)}/start`, `start preset ${preset}`, preset);
  }

  private async impinj(t: HttpStreamTransport, path: string, what: string, preset: string | undefined): Promise<CommandResult> {
    let res;
    try {
      res = await t.request('POST', path);
    } catch (err) {
      return { ok: false, detail: `the reader's REST API did not answer (${what}): ${(err as Error).message}` };
    }
    if (res.status >= 200 && res.status < 300) {
      this.changed(preset === undefined ? 'idle' : 'running');
      return { ok: true, data: { vendor: 'impinj', state: preset === undefined ? 'idle' : 'running', ...(preset !== undefined ? { preset } : {}) } };
    }
    return { ok: false, detail: `the reader refused to ${what}: HTTP ${res.status}${errorText(res.body)}` };
  }

  private async zebra(command: 'start' | 'stop'): Promise<CommandResult> {
    if (!this.client) return { ok: false, detail: 'the reader has no control interface (options.topics.controlCommands)' };
    try {
      const r = await this.client.request(command, {}, CONTROL_TIMEOUT_MS);
      if (!r.ok) return { ok: false, detail: `the reader refused ${command}${describePayload(r.payload)}` };
      this.changed(command === 'start' ? 'running' : 'idle');
      return { ok: true, data: { vendor: 'zebra', state: command === 'start' ? 'running' : 'idle', response: r.payload } };
    } catch (err) {
      if (isManagementError(err, 'timeout'))
        return { ok: false, detail: `${err.message} on ${this.o.controlCommands} (is the reader's control interface set to these topics?)` };
      return { ok: false, detail: (err as Error).message };
    }
  }

  private onResponse(payload: Buffer): void {
    const result = parseManagementResponse(payload.toString('utf8'));
    if (!result.ok) {
      this.reject(result.reason, `control response: ${result.detail}`);
      return;
    }
    this.ctx.seen();
    if (!this.client?.deliver(result.value)) this.ctx.log.debug({ commandId: result.value.commandId }, 'control response nobody waits for');
  }
}

/** `: message (detail)` from an Impinj ErrorResponse body, or the start of any other body. */
function errorText(body: string): string {
  if (body.trim() === '') return '';
  try {
    const json = JSON.parse(body) as unknown;
    if (isRecord(json) && typeof json.message === 'string') return `: ${json.message}${typeof json.detail === 'string' ? ` (${json.detail})` : ''}`;
  } catch {
    // not JSON: show its start
  }
  return `: ${body.trim().slice(0, 160)}`;
}

function describePayload(payload: Record<string, unknown>): string {
  for (const key of ['message', 'description', 'error']) if (typeof payload[key] === 'string') return `: ${payload[key] as string}`;
  return Object.keys(payload).length > 0 ? `: ${JSON.stringify(payload).slice(0, 160)}` : '';
}
