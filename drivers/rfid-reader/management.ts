/**
 * The reader's management interface over MQTT, in the manner of Zebra's IoT Connector (PROTOCOLS.md:
 * separate command and response topics; commands `{command, command_id, payload}`, responses adding
 * `response: "success" | "failure"`). One request at a time is the caller's choice; this client only
 * matches each response to its command by `command_id`, with a time-out, and drops the rest.
 *
 * Both topics sit in the reader's own namespace (`<vendor>/{id}/mgmt/cmd|res` by default), so the
 * broker's per-device ACL still confines the reader to topics that carry its id.
 */
import type { MqttTransport } from '../../hub/sdk/index.js';
import { isRecord, type ParseResult, parseJson, rejected } from './payload.js';

export interface ManagementResponse {
  command: string | undefined;
  commandId: string;
  ok: boolean;
  payload: Record<string, unknown>;
}

/** `timeout`: no answer in time; `offline`: the reader dropped off meanwhile; `stopped`: the driver stopped. */
export type ManagementErrorKind = 'timeout' | 'offline' | 'stopped';

export class ManagementError extends Error {
  constructor(
    readonly kind: ManagementErrorKind,
    message: string,
  ) {
    super(message);
    this.name = 'ManagementError';
  }
}

export const isManagementError = (err: unknown, kind?: ManagementErrorKind): err is ManagementError =>
  err instanceof ManagementError && (kind === undefined || err.kind === kind);

interface Pending {
  resolve: (r: ManagementResponse) => void;
  reject: (e: ManagementError) => void;
  timer: ReturnType<typeof setTimeout>;
}

/** Parses one message from the response topic. */
export function parseManagementResponse(text: string): ParseResult<ManagementResponse> {
  const json = parseJson(text);
  if (!json.ok) return json;
  const r = json.value;
  if (!isRecord(r)) return rejected('schema', 'management response is not an object');
  if (typeof r.command_id !== 'string' || r.command_id === '') return rejected('schema', 'management response without a command_id');
  if (r.response !== 'success' && r.response !== 'failure')
    return rejected('schema', `management response "${String(r.response)}" is neither success nor failure`);
  if (r.payload !== undefined && !isRecord(r.payload)) return rejected('schema', 'management response payload is not an object');
  return {
    ok: true,
    value: { command: typeof r.command === 'string' ? r.command : undefined, commandId: r.command_id, ok: r.response === 'success', payload: r.payload ?? {} },
  };
}

export class ManagementClient {
  private readonly pending = new Map<string, Pending>();
  private seq = 0;
  private stopped = false;

  constructor(
    private readonly transport: MqttTransport,
    private readonly commandTopic: string,
  ) {}

  /** Publishes one command (QoS 1) and resolves with its response, success or failure alike. */
  async request(command: string, payload: Record<string, unknown>, timeoutMs: number): Promise<ManagementResponse> {
    if (this.stopped) throw new ManagementError('stopped', 'the driver stopped');
    // unique per hub run and per command, so a late answer to an earlier attempt never matches a retry
    const commandId = `hub-${Date.now().toString(36)}-${++this.seq}`;
    const answered = new Promise<ManagementResponse>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(commandId);
        reject(new ManagementError('timeout', `no response to ${command} within ${timeoutMs} ms`));
      }, timeoutMs);
      timer.unref?.();
      this.pending.set(commandId, { resolve, reject, timer });
    });
    try {
      await this.transport.publish(this.commandTopic, JSON.stringify({ command, command_id: commandId, payload }), 1);
    } catch (err) {
      this.settle(commandId)?.reject(new ManagementError('offline', `could not publish ${command}: ${(err as Error).message}`));
    }
    return answered;
  }

  /** Publishes a command nobody waits for (an abort after a failure: the reader may well be gone). */
  async tell(command: string, payload: Record<string, unknown> = {}): Promise<void> {
    if (this.stopped) return;
    const commandId = `hub-${Date.now().toString(36)}-${++this.seq}`;
    await this.transport.publish(this.commandTopic, JSON.stringify({ command, command_id: commandId, payload }), 1).catch(() => undefined);
  }

  /** A response arrived: resolves its command. Returns false when nobody waits for it (late, or not ours). */
  deliver(response: ManagementResponse): boolean {
    const p = this.settle(response.commandId);
    p?.resolve(response);
    return p !== undefined;
  }

  /** Fails every command still waiting: the reader went offline, or the driver stops (and then every later one). */
  cancelAll(kind: ManagementErrorKind, message: string): void {
    if (kind === 'stopped') this.stopped = true;
    for (const id of [...this.pending.keys()]) this.settle(id)?.reject(new ManagementError(kind, message));
  }

  private settle(commandId: string): Pending | undefined {
    const p = this.pending.get(commandId);
    if (!p) return undefined;
    clearTimeout(p.timer);
    this.pending.delete(commandId);
    return p;
  }
}
