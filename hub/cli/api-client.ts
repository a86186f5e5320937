/**
 * How CLI commands reach a running hub's HTTP API: the address from the config (or --url), the
 * bearer token from --token or STOREHUB_TOKEN, and the exit codes of main.ts (2 usage, 3 the hub is
 * not reachable).
 */
import { readFileSync } from 'node:fs';
import { Agent, fetch } from 'undici';
import type { HubConfig } from '../config/schema.js';
import { loadConfigOrExit } from './open-tool-store.js';

export interface ApiTarget {
  base: string;
  token: string;
  /** How to trust the hub's HTTPS certificate (api.tls), when the address came from its config. */
  dispatcher?: Agent;
}

export interface ApiAnswer {
  status: number;
  body: unknown;
}

/** http(s)://host:port of the API a config describes; a wildcard bind is reached on loopback. */
export function apiBase(config: HubConfig): string {
  const { host, port } = config.api;
  const reachable = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;
  return `${config.api.tls ? 'https' : 'http'}://${reachable}:${port}`;
}

const LOOPBACK = new Set(['127.0.0.1', '[::1]', 'localhost']);

/**
 * With api.tls the CLI trusts the configured CA (api.tls.ca, by default the certificate itself, as
 * for a self-signed one). Over loopback the host name is not checked: the certificate names the
 * store's host, while the CLI on the box dials 127.0.0.1.
 */
export function apiDispatcher(config: HubConfig): Agent | undefined {
  const tls = config.api.tls;
  if (!tls) return undefined;
  const loopback = LOOPBACK.has(new URL(apiBase(config)).hostname);
  return new Agent({ connect: { ca: readFileSync(tls.ca ?? tls.cert), ...(loopback ? { checkServerIdentity: () => undefined } : {}) } });
}

/** fetch through the target's dispatcher (the hub's CA) when it has one. */
export function fetchApi(
  target: { base: string; dispatcher?: Agent | undefined },
  path: string,
  init: { method?: string; headers?: Record<string, string>; body?: string } = {},
) {
  return fetch(`${target.base}${path}`, { ...init, ...(target.dispatcher ? { dispatcher: target.dispatcher } : {}) });
}

/** The API and token for a command, or exit 2 saying what is missing. */
export function apiTargetOrExit(opts: { config: string; url?: string; token?: string }): ApiTarget {
  const token = opts.token ?? process.env.STOREHUB_TOKEN;
  if (!token) {
    process.stderr.write('a token is needed: --token <token> or STOREHUB_TOKEN (create one with `storehub token create --scope ops`)\n');
    process.exit(2);
  }
  if (opts.url) return { base: opts.url.replace(/\/+$/, ''), token };
  const config = loadConfigOrExit(opts.config);
  const dispatcher = apiDispatcher(config);
  return { base: apiBase(config), token, ...(dispatcher ? { dispatcher } : {}) };
}

/** One API call; exits 3 when the hub cannot be reached. */
export async function callApi(target: ApiTarget, path: string, init: { method?: string; body?: unknown } = {}): Promise<ApiAnswer> {
  const headers: Record<string, string> = { authorization: `Bearer ${target.token}` };
  if (init.body !== undefined) headers['content-type'] = 'application/json';
  let res: Awaited<ReturnType<typeof fetchApi>>;
  try {
    res = await fetchApi(target, path, {
      method: init.method ?? 'GET',
      headers,
      ...(init.body !== undefined ? { body: JSON.stringify(init.body) } : {}),
    });
  } catch (err) {
    process.stderr.write(`storehub is not reachable at ${target.base}: ${(err as Error).message}\n`);
    process.exit(3);
  }
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON: keep the text
  }
  return { status: res.status, body };
}

/** `CODE: message` of an API error body. */
export function describeApiError(answer: ApiAnswer): string {
  const body = answer.body as { code?: string; message?: string } | string;
  if (typeof body === 'object' && body !== null && body.code) return `${body.code}: ${body.message ?? ''}`;
  return `HTTP ${answer.status}: ${String(body).slice(0, 200)}`;
}
