/**
 * The `http-stream` transport: a device's HTTP(S) API under one base URL (an Impinj reader's
 * `https://<reader>/api/v1`), with HTTP basic auth and an optional CA bundle, through undici.
 *
 * - stream(path): keeps `GET <base><path>` open and hands its body bytes to the driver. When the
 *   response ends, fails or goes quiet for `idleTimeoutSeconds` (Impinj: a reader sends a CR-LF
 *   keep-alive when it has nothing to say; its documentation advises reconnecting after 90 s without
 *   data), it reopens it after an exponential delay with full jitter. A refusal that will not go away by
 *   itself (401/403/404 and other 4xx, an untrusted certificate, an unreadable CA file) is retried
 *   slowly (`refusedRetryMs`, default 60 s), so a wrong password does not hammer the device or its log.
 * - request(method, path, body): one JSON request under the same base URL and credentials.
 *
 * The password only ever lives in the Authorization header, in a private field: logging the transport
 * object cannot print it. The constructor does no I/O; the CA file is read on the first connection.
 */
import { readFileSync } from 'node:fs';
import { Agent, request } from 'undici';
import type { HttpResponse, HttpStreamHandlers, HttpStreamTransport, Unsubscribe } from '../../sdk/transport.js';
import { Backoff } from '../backoff.js';

export interface HttpStreamLineConfig {
  /** Base URL of the device's API, e.g. https://reader-1.local/api/v1 (no credentials in it). */
  url: string;
  username?: string;
  password?: string;
  /** PEM CA bundle file the device's certificate must chain to (default: the system CAs). */
  ca?: string;
  /** A stream with no byte (not even a keep-alive) for this long is dropped and reopened. */
  idleTimeoutSeconds?: number;
}

export interface HttpStreamLineTimings {
  /** First reconnect delay (the actual delay is jittered between half of it and the cap). */
  initialMs: number;
  maxMs: number;
  /** A stream that stayed open this long resets the backoff. */
  resetAfterMs: number;
  /** Delay after a refusal that retrying soon will not fix (4xx, untrusted certificate), jittered ±25%. */
  refusedRetryMs: number;
  /** Time-out of a request's headers, of a one-shot request's body, and of connecting. */
  requestTimeoutMs: number;
  random: () => number;
}

const DEFAULT_TIMINGS: HttpStreamLineTimings = {
  initialMs: 1000,
  maxMs: 60_000,
  resetAfterMs: 10_000,
  refusedRetryMs: 60_000,
  requestTimeoutMs: 10_000,
  random: Math.random,
};

const MAX_BODY = 64 * 1024;

const TLS_TRUST = new Set([
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_GET_ISSUER_CERT',
  'CERT_UNTRUSTED',
]);

/** A failure with what the transport should tell the driver, and whether retrying soon can help. */
class StreamFailure extends Error {
  constructor(
    message: string,
    readonly slow: boolean,
    readonly status?: number,
    /** How long the stream had been open when it failed, ms (0: it never opened). */
    readonly openFor = 0,
  ) {
    super(message);
  }
}

interface StreamState {
  stopped: boolean;
  abort: AbortController | undefined;
  wake: (() => void) | undefined;
}

export class HttpStreamLine implements HttpStreamTransport {
  readonly type = 'http-stream' as const;
  /** Base URL without a trailing slash. */
  readonly base: string;
  readonly #authorization: string | undefined;
  private readonly timings: HttpStreamLineTimings;
  private readonly idleTimeoutMs: number;
  private agent: Agent | undefined;
  private current: StreamState | undefined;
  private closed = false;

  constructor(
    private readonly config: HttpStreamLineConfig,
    timings: Partial<HttpStreamLineTimings> = {},
  ) {
    this.base = config.url.replace(/\/+$/, '');
    this.timings = { ...DEFAULT_TIMINGS, ...timings };
    this.idleTimeoutMs = (config.idleTimeoutSeconds ?? 90) * 1000;
    if (config.username !== undefined || config.password !== undefined)
      this.#authorization = `Basic ${Buffer.from(`${config.username ?? ''}:${config.password ?? ''}`).toString('base64')}`;
  }

  stream(path: string, handlers: HttpStreamHandlers): Unsubscribe {
    if (this.closed) throw new Error('the transport is closed');
    if (this.current && !this.current.stopped) throw new Error('one stream per http-stream transport');
    const state: StreamState = { stopped: false, abort: undefined, wake: undefined };
    this.current = state;
    void this.keepOpen(state, path, handlers);
    return () => this.stopStream(state);
  }

  async request(method: 'GET' | 'POST' | 'PUT' | 'DELETE', path: string, body?: unknown): Promise<HttpResponse> {
    if (this.closed) throw new Error('the transport is closed');
    const headers: Record<string, string> = { accept: 'application/json', ...this.auth() };
    if (body !== undefined) headers['content-type'] = 'application/json';
    try {
      const res = await request(this.urlOf(path), {
        method,
        dispatcher: this.dispatcher(),
        headers,
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        headersTimeout: this.timings.requestTimeoutMs,
        bodyTimeout: this.timings.requestTimeoutMs,
      });
      return { status: res.statusCode, body: await readCapped(res.body, MAX_BODY) };
    } catch (err) {
      throw new Error(err instanceof StreamFailure ? err.message : this.describe(err), { cause: err });
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.current) this.stopStream(this.current);
    const agent = this.agent;
    this.agent = undefined;
    await agent?.destroy().catch(() => undefined);
  }

  private stopStream(state: StreamState): void {
    state.stopped = true;
    state.abort?.abort();
    state.wake?.();
  }

  private auth(): Record<string, string> {
    return this.#authorization ? { authorization: this.#authorization } : {};
  }

  private urlOf(path: string): string {
    return `${this.base}${path.startsWith('/') ? path : `/${path}`}`;
  }

  private dispatcher(): Agent {
    if (this.agent) return this.agent;
    let ca: Buffer | undefined;
    if (this.config.ca !== undefined) {
      try {
        ca = readFileSync(this.config.ca);
      } catch (err) {
        throw new StreamFailure(`cannot read transport.ca ${this.config.ca}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, true);
      }
    }
    this.agent = new Agent({ connect: { ...(ca ? { ca } : {}), timeout: this.timings.requestTimeoutMs }, keepAliveTimeout: 4000 });
    return this.agent;
  }

  /** The reconnect loop of one stream: runs until the stream or the transport is stopped. */
  private async keepOpen(state: StreamState, path: string, handlers: HttpStreamHandlers): Promise<void> {
    const t = this.timings;
    const backoff = new Backoff({ initialMs: t.initialMs, maxMs: t.maxMs, resetAfterMs: t.resetAfterMs, random: t.random });
    while (!state.stopped) {
      let failure: StreamFailure;
      try {
        const openFor = await this.openOnce(state, path, handlers);
        failure = new StreamFailure('the device ended the stream', false, undefined, openFor);
      } catch (err) {
        failure = err instanceof StreamFailure ? err : new StreamFailure(this.describe(err), this.isRefusal(err));
      }
      if (state.stopped) break;
      backoff.ranFor(failure.openFor);
      const delay = failure.slow ? Math.round(t.refusedRetryMs * (0.75 + 0.5 * t.random())) : backoff.next();
      try {
        handlers.closed({ reason: failure.message, ...(failure.status !== undefined ? { status: failure.status } : {}), retryInMs: delay });
      } catch {
        // the driver guards its own handlers; a throw here must not end the reconnect loop
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, delay);
        timer.unref?.();
        state.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      state.wake = undefined;
    }
  }

  /** One connection: resolves with how long it was open when the body ended; throws StreamFailure otherwise. */
  private async openOnce(state: StreamState, path: string, handlers: HttpStreamHandlers): Promise<number> {
    const abort = new AbortController();
    state.abort = abort;
    const res = await request(this.urlOf(path), {
      method: 'GET',
      dispatcher: this.dispatcher(),
      headers: { accept: 'application/json', ...this.auth() },
      signal: abort.signal,
      headersTimeout: this.timings.requestTimeoutMs,
      // Impinj: "if 90 seconds pass with no data received, including newlines, disconnect and reconnect"
      bodyTimeout: this.idleTimeoutMs,
    });
    if (res.statusCode < 200 || res.statusCode >= 300) {
      const text = await readCapped(res.body, 2048).catch(() => '');
      throw httpFailure(res.statusCode, text, path);
    }
    const openedAt = Date.now();
    try {
      handlers.open();
    } catch {
      // a driver's fault stays in the driver (as for data below)
    }
    try {
      for await (const chunk of res.body as AsyncIterable<Buffer>) {
        if (state.stopped) break;
        try {
          handlers.data(chunk);
        } catch {
          // as above
        }
      }
    } catch (err) {
      throw new StreamFailure(this.describe(err), false, undefined, Date.now() - openedAt);
    }
    return Date.now() - openedAt;
  }

  private isRefusal(err: unknown): boolean {
    const code = errorCode(err);
    return code !== undefined && (TLS_TRUST.has(code) || code === 'ERR_TLS_CERT_ALTNAME_INVALID' || code === 'CERT_HAS_EXPIRED');
  }

  /** A network or TLS error in words, without the credentials (the URL never carries any). */
  private describe(err: unknown): string {
    const code = errorCode(err);
    const host = new URL(this.base).host;
    switch (code) {
      case 'ECONNREFUSED':
        return `connection refused by ${host} (ECONNREFUSED)`;
      case 'ENOTFOUND':
      case 'EAI_AGAIN':
        return `cannot resolve ${new URL(this.base).hostname} (${code})`;
      case 'ETIMEDOUT':
      case 'UND_ERR_CONNECT_TIMEOUT':
        return `no answer from ${host} (connect timeout)`;
      case 'EHOSTUNREACH':
      case 'ENETUNREACH':
        return `${host} is unreachable (${code})`;
      case 'ECONNRESET':
      case 'EPIPE':
      case 'UND_ERR_SOCKET':
        return `the connection to ${host} dropped (${code === 'UND_ERR_SOCKET' ? 'closed by the other side' : code})`;
      case 'UND_ERR_BODY_TIMEOUT':
        return `no data or keep-alive from ${host} for ${Math.round(this.idleTimeoutMs / 1000)} s`;
      case 'UND_ERR_HEADERS_TIMEOUT':
        return `${host} did not answer within ${Math.round(this.timings.requestTimeoutMs / 1000)} s`;
      case 'ERR_TLS_CERT_ALTNAME_INVALID':
        return `TLS: the certificate of ${host} is not issued for that name (${code})`;
      case 'CERT_HAS_EXPIRED':
        return `TLS: the certificate of ${host} has expired (${code})`;
      default:
        if (code && TLS_TRUST.has(code)) return `TLS: the certificate of ${host} is not trusted (${code}); set transport.ca to the CA that issued it`;
        return `${host}: ${(err as Error).message}${code ? ` (${code})` : ''}`;
    }
  }
}

function errorCode(err: unknown): string | undefined {
  for (let e = err as { code?: unknown; cause?: unknown } | undefined, depth = 0; e && depth < 4; e = e.cause as typeof e, depth++) {
    if (typeof e.code === 'string') return e.code;
  }
  return undefined;
}

/** An HTTP refusal in words. 4xx other than 408/429 will not go away by retrying soon. */
function httpFailure(status: number, text: string, path: string): StreamFailure {
  let message = '';
  try {
    const json = JSON.parse(text) as { message?: unknown; detail?: unknown };
    if (typeof json.message === 'string') message = json.message + (typeof json.detail === 'string' ? ` (${json.detail})` : '');
  } catch {
    message = text.trim().slice(0, 120);
  }
  const slow = status >= 400 && status < 500 && status !== 408 && status !== 429;
  const why =
    status === 401
      ? 'the device refused the credentials (check transport.username and transport.password)'
      : status === 403
        ? `the user may not read ${path}`
        : status === 404
          ? `no ${path} under transport.url (it must be the API base, e.g. https://<reader>/api/v1)`
          : message || 'unexpected answer';
  return new StreamFailure(`HTTP ${status}: ${why}`, slow, status);
}

async function readCapped(body: AsyncIterable<Buffer>, max: number): Promise<string> {
  const parts: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    if (size < max) parts.push(chunk.subarray(0, max - size));
    size += chunk.length;
  }
  return Buffer.concat(parts).toString('utf8');
}
