/**
 * A firmware image named by a job: inline (`data`, base64) or fetched from `url`, then checked in the
 * order that gives the clearest reason: size, SHA-256, and the ed25519 signature over the bytes. Only
 * bytes that passed all three are handed to the rollout, so nothing unverified can reach a device.
 */
import { createHash, type KeyObject } from 'node:crypto';
import { decodeBase64, signatureProblem } from './firmware-signature.js';

export interface FirmwareImageSpec {
  url?: string;
  data?: string;
  /** Lowercase hex SHA-256 of the image bytes. */
  sha256: string;
  size: number;
}

/** Fetches an image; must not return more than `maxBytes` and must honour the signal. */
export type ImageFetcher = (url: string, options: { maxBytes: number; signal: AbortSignal }) => Promise<Buffer>;

/** Thrown by a fetch whose failure a later attempt will not fix (a 4xx, an oversized body). */
export class PermanentFetchError extends Error {}

export const fetchImageOverHttp: ImageFetcher = async (url, { maxBytes, signal }) => {
  const res = await fetch(url, { signal, redirect: 'follow' });
  if (!res.ok) {
    const message = `GET ${url} answered ${res.status}`;
    throw res.status >= 400 && res.status < 500 && res.status !== 429 ? new PermanentFetchError(message) : new Error(message);
  }
  const declared = Number(res.headers.get('content-length') ?? NaN);
  if (declared > maxBytes) throw new PermanentFetchError(`GET ${url}: ${declared} bytes, more than the declared image size ${maxBytes}`);
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of res.body ?? []) {
    total += (chunk as Uint8Array).byteLength;
    if (total > maxBytes) throw new PermanentFetchError(`GET ${url}: more than the declared image size ${maxBytes} bytes`);
    chunks.push(Buffer.from(chunk as Uint8Array));
  }
  return Buffer.concat(chunks);
};

/** Why these bytes are not the signed image the job names, or undefined when they are. */
export function imageProblem(bytes: Buffer, spec: FirmwareImageSpec, signature: string | undefined, keys: readonly KeyObject[]): string | undefined {
  if (bytes.length !== spec.size) return `the image is ${bytes.length} bytes, the job says ${spec.size}`;
  const digest = createHash('sha256').update(bytes).digest('hex');
  if (digest !== spec.sha256.toLowerCase()) return `the image's SHA-256 is ${digest}, the job says ${spec.sha256}`;
  return signatureProblem(bytes, signature, keys);
}

/** Decodes an inline image; undefined when `data` is not strict base64. */
export function decodeInlineImage(data: string): Buffer | undefined {
  return decodeBase64(data);
}
