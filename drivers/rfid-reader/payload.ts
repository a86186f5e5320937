/**
 * Shared pieces of the reader payload parsers: the typed result every parser returns instead of
 * throwing, and small validators for the JSON both vendors send.
 */

/** Why a payload was refused: not JSON at all, or JSON of the wrong shape. */
export type PayloadRejection = 'malformed' | 'schema';

export interface Rejected {
  ok: false;
  reason: PayloadRejection;
  detail: string;
}

export interface Accepted<T> {
  ok: true;
  value: T;
}

export type ParseResult<T> = Accepted<T> | Rejected;

export const rejected = (reason: PayloadRejection, detail: string): Rejected => ({ ok: false, reason, detail });

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function parseJson(text: string): ParseResult<unknown> {
  try {
    return { ok: true, value: JSON.parse(text) as unknown };
  } catch (err) {
    return rejected('malformed', (err as Error).message.slice(0, 200));
  }
}

/** An ISO 8601 time (both vendors send one; Zebra writes the offset as +0000) in ms, or undefined. */
export function parseTime(value: unknown): number | undefined {
  if (typeof value !== 'string') return undefined;
  const ms = Date.parse(value);
  return Number.isFinite(ms) ? ms : undefined;
}

const HEX = /^[0-9A-Fa-f]+$/;

/** Upper-case hex of a non-empty, whole-byte hex string; undefined for anything else. */
export function normaliseHex(value: unknown): string | undefined {
  if (typeof value !== 'string' || value.length === 0 || value.length % 2 !== 0 || !HEX.test(value)) return undefined;
  return value.toUpperCase();
}

/** An antenna port: a positive integer (readers number their ports from 1). */
export function isAntennaPort(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 1 && value <= 0xffff;
}

export const finiteOrUndefined = (value: unknown): number | undefined => (typeof value === 'number' && Number.isFinite(value) ? value : undefined);

/** How a reader says its MQTT session stands (birth, will and goodbye messages). */
export type ConnectionState = 'connected' | 'lost' | 'disconnected';
