/**
 * The simulated Impinj reader's HTTP(S) server: the part of the reader configuration REST API the hub
 * uses, under `/api/v1`, with HTTP basic auth. Written from Impinj's API description (see
 * ../../drivers/rfid-reader/README.md), not from the hub's code.
 *
 * - `GET /data/stream`: newline-delimited JSON, one event per line, held open indefinitely; a CR-LF
 *   keep-alive when nothing was sent for `keepAliveMs` (StreamConfiguration.keepAliveIntervalSeconds).
 *   Too many streams with the same credentials: the oldest is closed (Impinj documents this; the
 *   limit is not documented, here it is one per user). Events while no stream is open wait in a
 *   history buffer (StreamConfiguration.eventBufferSize; here `historyLines`) and go to the next stream.
 * - `POST /profiles/inventory/presets/{presetId}/start` (204; 404 for a preset it does not have),
 *   `POST /profiles/stop` (204, a no-op when idle), `GET /status` (`{status, time, serialNumber,
 *   activePreset}`).
 * - Errors as Impinj's ErrorResponse: `{"message": ...}`; 401 with `WWW-Authenticate: Basic`.
 */
import { readFileSync } from 'node:fs';
import http, { type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';

export interface ImpinjHttpOptions {
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 0: a free port, kept across restarts (read `url`). */
  port?: number;
  /** PEM files: serve HTTPS. */
  tls?: { cert: string; key: string };
  /** Basic auth; without a username no credentials are asked for. */
  username?: string;
  password?: string;
  /** CR-LF keep-alive after this long without a write, ms. Default 30 000 (0: none). */
  keepAliveMs?: number;
  /** Presets the reader has. Default ['default']. */
  presets?: string[];
  /** Lines kept while no stream is open, oldest dropped first. Default 10 000. */
  historyLines?: number;
}

export interface ImpinjRestHandlers {
  start(preset: string): Promise<void>;
  stop(): Promise<void>;
  status(): Record<string, unknown>;
}

interface Stream {
  res: ServerResponse;
  user: string;
  lastWrite: number;
}

export class ImpinjHttpServer {
  /** Requests answered, for tests: method, path, status and when (ms). */
  readonly requests: { method: string; path: string; status: number; time: number }[] = [];
  private server: Server | undefined;
  /** A killed server still closing: the next listen() on the same port waits for it. */
  private closing: Promise<void> | undefined;
  private port: number;
  private readonly streams = new Set<Stream>();
  private readonly sockets = new Set<Socket>();
  private keepAlive: ReturnType<typeof setInterval> | undefined;
  private readonly presets: Set<string>;
  private history: (string | Buffer)[] = [];
  /** Lines dropped from a full history buffer. */
  historyDropped = 0;

  constructor(
    private readonly o: ImpinjHttpOptions,
    private readonly handlers: ImpinjRestHandlers,
  ) {
    this.port = o.port ?? 0;
    this.presets = new Set(o.presets ?? ['default']);
  }

  /** The API base, e.g. https://127.0.0.1:43121/api/v1 (once listening). */
  get url(): string {
    return `${this.o.tls ? 'https' : 'http'}://${this.o.host ?? '127.0.0.1'}:${this.port}/api/v1`;
  }

  get openStreams(): number {
    return this.streams.size;
  }

  /** The largest unsent backlog of any stream, bytes (a slow client). */
  get backlog(): number {
    let max = 0;
    for (const s of this.streams) max = Math.max(max, s.res.writableLength);
    return max;
  }

  async listen(): Promise<void> {
    if (this.server) return;
    await this.closing;
    const handler = (req: IncomingMessage, res: ServerResponse) => this.route(req, res);
    const server = this.o.tls
      ? https.createServer({ cert: readFileSync(this.o.tls.cert), key: readFileSync(this.o.tls.key) }, handler)
      : http.createServer(handler);
    server.on('connection', (socket: Socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
    });
    // a TLS handshake that fails (the hub does not trust the certificate) is the client's business
    server.on('tlsClientError', () => undefined);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, this.o.host ?? '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.server = server;
    this.port = (server.address() as AddressInfo).port;
    const every = this.o.keepAliveMs ?? 30_000;
    if (every > 0) {
      this.keepAlive = setInterval(
        () => {
          const now = Date.now();
          for (const s of this.streams) if (now - s.lastWrite >= every) this.write(s, '\r\n');
        },
        Math.max(50, Math.min(every, 1000)),
      );
      this.keepAlive.unref();
    }
  }

  /** Writes text (whole lines) to every open stream, or keeps it for the next one. */
  broadcast(text: string | Buffer): void {
    if (this.streams.size === 0) {
      this.history.push(text);
      const max = this.o.historyLines ?? 10_000;
      if (this.history.length > max) this.historyDropped += this.history.splice(0, this.history.length - max).length;
      return;
    }
    for (const s of this.streams) this.write(s, text);
  }

  /** The network drops every open stream (no clean end): the client must reconnect. */
  dropStreams(): void {
    for (const s of [...this.streams]) {
      this.streams.delete(s);
      s.res.socket?.destroy();
    }
  }

  /** A clean shutdown: streams end, the server closes. */
  async close(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    if (this.keepAlive) clearInterval(this.keepAlive);
    for (const s of [...this.streams]) s.res.end();
    this.streams.clear();
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeAllConnections();
    await closed;
  }

  /** A power cut: every socket dies at once. */
  kill(): void {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    if (this.keepAlive) clearInterval(this.keepAlive);
    this.streams.clear();
    for (const socket of this.sockets) socket.destroy();
    this.closing = new Promise((resolve) => server.close(() => resolve()));
  }

  private write(s: Stream, text: string | Buffer): void {
    s.lastWrite = Date.now();
    s.res.write(text);
  }

  private send(
    req: IncomingMessage,
    res: ServerResponse,
    path: string,
    status: number,
    body?: Record<string, unknown>,
    headers: Record<string, string> = {},
  ): void {
    this.requests.push({ method: req.method ?? '', path, status, time: Date.now() });
    if (body === undefined) {
      res.writeHead(status, headers).end();
      return;
    }
    res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(body));
  }

  /** The user name when the request carries the right credentials (or none are asked for). */
  private authorised(req: IncomingMessage): string | undefined {
    if (this.o.username === undefined) return '';
    const header = req.headers.authorization ?? '';
    const m = /^Basic\s+(\S+)$/i.exec(header);
    if (!m) return undefined;
    const decoded = Buffer.from(m[1] as string, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    const user = decoded.slice(0, colon);
    return colon >= 0 && user === this.o.username && decoded.slice(colon + 1) === (this.o.password ?? '') ? user : undefined;
  }

  private route(req: IncomingMessage, res: ServerResponse): void {
    req.resume(); // bodies are not used; let them drain
    const path = new URL(req.url ?? '/', 'http://reader').pathname;
    const user = this.authorised(req);
    if (user === undefined) {
      this.send(req, res, path, 401, { message: 'Unauthorized' }, { 'www-authenticate': 'Basic realm="Impinj reader"' });
      return;
    }
    const api = path.startsWith('/api/v1/') ? path.slice('/api/v1'.length) : undefined;
    const method = req.method ?? 'GET';
    const start = api === undefined ? null : /^\/profiles\/inventory\/presets\/([^/]+)\/start$/.exec(api);
    if (api === '/data/stream') {
      if (method !== 'GET') return this.send(req, res, path, 405, { message: 'Method not allowed' });
      this.openStream(req, res, path, user);
    } else if (start) {
      if (method !== 'POST') return this.send(req, res, path, 405, { message: 'Method not allowed' });
      const preset = decodeURIComponent(start[1] as string);
      if (!this.presets.has(preset)) return this.send(req, res, path, 404, { message: `Preset ${preset} was not found` });
      void this.handlers.start(preset).then(
        () => this.send(req, res, path, 204),
        (err: Error) => this.send(req, res, path, 500, { message: err.message }),
      );
    } else if (api === '/profiles/stop') {
      if (method !== 'POST') return this.send(req, res, path, 405, { message: 'Method not allowed' });
      void this.handlers.stop().then(
        () => this.send(req, res, path, 204),
        (err: Error) => this.send(req, res, path, 500, { message: err.message }),
      );
    } else if (api === '/status') {
      if (method !== 'GET') return this.send(req, res, path, 405, { message: 'Method not allowed' });
      this.send(req, res, path, 200, this.handlers.status());
    } else this.send(req, res, path, 404, { message: 'Not found' });
  }

  private openStream(req: IncomingMessage, res: ServerResponse, path: string, user: string): void {
    // too many streams with the same credentials: the oldest is closed
    for (const s of [...this.streams]) {
      if (s.user !== user) continue;
      this.streams.delete(s);
      s.res.end();
    }
    this.requests.push({ method: 'GET', path, status: 200, time: Date.now() });
    res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' });
    res.flushHeaders();
    req.socket.setNoDelay(true);
    const stream: Stream = { res, user, lastWrite: Date.now() };
    this.streams.add(stream);
    for (const text of this.history.splice(0)) this.write(stream, text);
    res.on('close', () => this.streams.delete(stream));
  }
}
