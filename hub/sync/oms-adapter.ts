/**
 * The OMS adapter: the ledger stream as HTTPS batches to an order management system
 * (docs/cloud-protocol.md, "OMS adapter"). Each batch carries an idempotency key; the receiver
 * answers with the highest seq it applied. 5xx, 429 and network failures are retried with backoff;
 * other 4xx hold the stream (a ledger record is never skipped) and say why.
 */
import { readFileSync } from 'node:fs';
import { Agent, request } from 'undici';
import type { HubConfig } from '../config/schema.js';
import { type AckAnswer, SinkError, type SinkTransport } from './stream-pump.js';
import type { OutboxBatch } from './streams.js';

export class OmsAdapter implements SinkTransport {
  readonly sink = 'oms';
  readonly connected = true;
  private readonly agent: Agent;
  private readonly base: string;

  constructor(
    private readonly config: HubConfig['cloud']['oms'],
    private readonly hubId: string,
  ) {
    if (!config.url) throw new Error('cloud.oms.url is required when cloud.oms.enabled is true');
    this.base = config.url.replace(/\/+$/, '');
    this.agent = new Agent({
      connect: config.ca ? { ca: readFileSync(config.ca) } : {},
      headersTimeout: config.timeoutSeconds * 1000,
      bodyTimeout: config.timeoutSeconds * 1000,
    });
  }

  private headers(extra: Record<string, string> = {}): Record<string, string> {
    return { ...(this.config.token ? { authorization: `Bearer ${this.config.token}` } : {}), ...extra };
  }

  async send(batch: OutboxBatch): Promise<AckAnswer> {
    const first = batch.records[0]?.seq;
    const last = batch.records[batch.records.length - 1]?.seq;
    const url = `${this.base}/v1/hubs/${encodeURIComponent(this.hubId)}/streams/${batch.stream}/batches`;
    let res;
    try {
      res = await request(url, {
        method: 'POST',
        dispatcher: this.agent,
        headers: this.headers({ 'content-type': 'application/json', 'idempotency-key': `${batch.hub}/${batch.stream}/${batch.epoch}/${first}-${last}` }),
        body: JSON.stringify(batch),
      });
    } catch (err) {
      throw new SinkError(`OMS unreachable: ${(err as Error).message}`, 'retry', 'network');
    }
    const text = await res.body.text().catch(() => '');
    const status = res.statusCode;
    if (status === 200 || status === 409) {
      const answer = parseAnswer(text);
      if (!answer)
        throw new SinkError(`OMS answered ${status} with a body that is not {epoch, appliedThrough}: ${text.slice(0, 120)}`, 'retry', 'invalid_response');
      return answer;
    }
    if (status === 429 || status >= 500) {
      throw new SinkError(`OMS answered ${status}`, 'retry', `http_${status}`, retryAfterMs(res.headers['retry-after']));
    }
    throw new SinkError(`OMS refused the batch with ${status}: ${text.slice(0, 200)}`, 'hold', `http_${status}`);
  }

  /** What the receiver already has, asked at start so a rebuilt hub does not resend everything. */
  async cursor(stream: string): Promise<AckAnswer | undefined> {
    try {
      const res = await request(`${this.base}/v1/hubs/${encodeURIComponent(this.hubId)}/streams/${stream}/cursor`, {
        dispatcher: this.agent,
        headers: this.headers(),
      });
      const text = await res.body.text();
      return res.statusCode === 200 ? parseAnswer(text) : undefined;
    } catch {
      return undefined;
    }
  }

  async close(): Promise<void> {
    await this.agent.close();
  }
}

function parseAnswer(text: string): AckAnswer | undefined {
  try {
    const o = JSON.parse(text) as { epoch?: unknown; appliedThrough?: unknown };
    if (Number.isInteger(o.epoch) && Number.isInteger(o.appliedThrough) && (o.appliedThrough as number) >= 0) {
      return { epoch: o.epoch as number, appliedThrough: o.appliedThrough as number };
    }
  } catch {
    // not JSON: the caller reports it
  }
  return undefined;
}

function retryAfterMs(header: string | string[] | undefined): number | undefined {
  const value = Array.isArray(header) ? header[0] : header;
  if (value === undefined) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.min(seconds, 300) * 1000;
  const date = Date.parse(value);
  return Number.isFinite(date) ? Math.max(0, Math.min(date - Date.now(), 300_000)) : undefined;
}
