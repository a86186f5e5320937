/**
 * Transports: how a driver reaches its device. Each has a real implementation (embedded broker,
 * serialport, node-hid, undici for http-stream) and an in-memory one for unit tests, with the same
 * interface, as node-serialport's bindings do (http-stream's tests use a loopback HTTP server, the
 * reader simulator's, instead: HTTP on 127.0.0.1 is as cheap as memory).
 */
export type Unsubscribe = () => void;

/** Topics of a device on the hub's embedded broker, seen from inside the hub (no socket). */
export interface MqttTransport {
  type: 'mqtt';
  subscribe(filter: string, handler: (topic: string, payload: Buffer) => void): Unsubscribe;
  publish(topic: string, payload: Buffer | string, qos?: 0 | 1): Promise<void>;
}

/** A byte stream: a serial line (RS-485, USB CDC) or, in tests, a pseudo-terminal. */
export interface ByteTransport<K extends 'serial' | 'hid'> {
  type: K;
  open(): Promise<void>;
  write(data: Buffer): Promise<void>;
  onData(handler: (data: Buffer) => void): Unsubscribe;
  /** Called when the line closes or fails underneath the driver (unplugged adapter). */
  onClose(handler: (error?: Error) => void): Unsubscribe;
  close(): Promise<void>;
  readonly isOpen: boolean;
}

export type SerialTransport = ByteTransport<'serial'>;
export type HidTransport = ByteTransport<'hid'>;

/** Why a device's HTTP stream is not open, and when the transport tries again. */
export interface HttpStreamClosed {
  /** In words store IT can act on, e.g. `HTTP 401 Unauthorized: ...`, `connection refused (ECONNREFUSED)`. */
  reason: string;
  /** The HTTP status, when the device answered with one. */
  status?: number;
  /** Delay before the next attempt, ms. */
  retryInMs: number;
}

export interface HttpStreamHandlers {
  /** A response is streaming (2xx): the bytes that follow start a fresh body. */
  open(): void;
  /** Body bytes, cut anywhere (lines and UTF-8 characters may span chunks). */
  data(chunk: Buffer): void;
  /** The response ended, failed or was refused; the transport tries again after `retryInMs`. */
  closed(info: HttpStreamClosed): void;
}

export interface HttpResponse {
  status: number;
  /** The body as text (UTF-8), capped at 64 KiB. */
  body: string;
}

/**
 * A device's HTTP(S) API (e.g. an Impinj reader's REST interface under `https://<reader>/api/v1`):
 * one long-lived response stream that the transport keeps open, reopening it with jittered backoff
 * when it ends or fails, plus one-shot requests, both under the configured base URL and credentials.
 */
export interface HttpStreamTransport {
  type: 'http-stream';
  /**
   * Opens `GET <base><path>` and keeps it open until the returned function is called (or close()).
   * One stream per transport. Never throws for network or HTTP failures: those go to `closed`.
   */
  stream(path: string, handlers: HttpStreamHandlers): Unsubscribe;
  /** One request under the base URL. Rejects only when no HTTP answer arrived (network, TLS, time-out). */
  request(method: 'GET' | 'POST' | 'PUT' | 'DELETE', path: string, body?: unknown): Promise<HttpResponse>;
  close(): Promise<void>;
}

export type Transport = MqttTransport | SerialTransport | HidTransport | HttpStreamTransport;
