/**
 * Ed25519 signatures over firmware images (RFC 8032, through node:crypto): HQ signs an image with
 * its private key (`storehub firmware sign`); the hub verifies it against the public keys in
 * `ops.firmwareKeys` before a single byte goes to a device. Public keys are accepted as PEM (SPKI) or
 * as base64 of the 32 raw key bytes, the form `storehub firmware keygen` prints for the config.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject, sign, verify } from 'node:crypto';
import { HubError } from '../sdk/errors.js';

const ED25519_PUBLIC_KEY_BYTES = 32;
const ED25519_SIGNATURE_BYTES = 64;

/** Strict base64 (RFC 4648 section 4, padded): Buffer.from would skip garbage silently. */
export function decodeBase64(text: string): Buffer | undefined {
  if (text.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(text)) return undefined;
  const bytes = Buffer.from(text, 'base64');
  return bytes.toString('base64') === text ? bytes : undefined;
}

/** Parses one public key; throws an Error saying what is wrong with it. */
export function parsePublicKey(text: string): KeyObject {
  const trimmed = text.trim();
  let key: KeyObject;
  if (trimmed.startsWith('-----BEGIN')) {
    key = createPublicKey(trimmed);
  } else {
    const raw = decodeBase64(trimmed);
    if (!raw || raw.length !== ED25519_PUBLIC_KEY_BYTES) throw new Error(`not PEM, nor base64 of ${ED25519_PUBLIC_KEY_BYTES} raw key bytes`);
    key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: raw.toString('base64url') }, format: 'jwk' });
  }
  if (key.asymmetricKeyType !== 'ed25519') throw new Error(`an ${key.asymmetricKeyType ?? 'unknown'} key, not ed25519`);
  return key;
}

/** Parses `ops.firmwareKeys`; a key that does not parse is a configuration error naming its index. */
export function parseFirmwareKeys(texts: readonly string[]): KeyObject[] {
  const problems: string[] = [];
  const keys: KeyObject[] = [];
  texts.forEach((text, i) => {
    try {
      keys.push(parsePublicKey(text));
    } catch (err) {
      problems.push(`ops.firmwareKeys[${i}]: ${(err as Error).message}`);
    }
  });
  if (problems.length > 0) throw new HubError('HUB_ERR_CONFIG_INVALID', `firmware keys are invalid:\n${problems.join('\n')}`, { context: { problems } });
  return keys;
}

/** The base64 of a public key's 32 raw bytes: one line that fits in the YAML config. */
export function rawPublicKeyBase64(key: KeyObject): string {
  const jwk = key.export({ format: 'jwk' }) as { x?: string };
  return Buffer.from(jwk.x ?? '', 'base64url').toString('base64');
}

export interface SigningKeyPair {
  privateKeyPem: string;
  publicKeyPem: string;
  /** For `ops.firmwareKeys`. */
  publicKeyBase64: string;
}

export function generateSigningKeyPair(): SigningKeyPair {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return {
    privateKeyPem: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
    publicKeyPem: publicKey.export({ format: 'pem', type: 'spki' }).toString(),
    publicKeyBase64: rawPublicKeyBase64(publicKey),
  };
}

/** Signs image bytes with a PEM private key; returns the base64 signature. */
export function signImage(image: Buffer, privateKeyPem: string): string {
  const key = createPrivateKey(privateKeyPem);
  if (key.asymmetricKeyType !== 'ed25519') throw new Error(`the signing key is ${key.asymmetricKeyType ?? 'unknown'}, not ed25519`);
  // Ed25519 hashes internally: node:crypto takes a null algorithm for it.
  return sign(null, image, key).toString('base64');
}

/** Why the signature does not vouch for the image, or undefined when one of the keys verifies it. */
export function signatureProblem(image: Buffer, signature: string | undefined, keys: readonly KeyObject[]): string | undefined {
  if (signature === undefined || signature === '') return 'the image is not signed (no signature)';
  if (keys.length === 0) return 'no firmware keys are configured (ops.firmwareKeys), so no image can be trusted';
  const bytes = decodeBase64(signature);
  if (!bytes || bytes.length !== ED25519_SIGNATURE_BYTES) return `the signature is not base64 of ${ED25519_SIGNATURE_BYTES} bytes`;
  if (keys.some((key) => verify(null, image, key, bytes))) return undefined;
  return 'bad signature: no configured firmware key verifies this image';
}
