/**
 * `storehub firmware keygen|sign`: what HQ needs to produce images a hub will accept. `keygen` writes
 * an ed25519 key pair and prints the public key in the one-line form `ops.firmwareKeys` takes; `sign`
 * signs an image with the private key and prints the signature, or with --image-version and --target a
 * whole `firmware.update` job document ready for `storehub job create` (docs/jobs.md).
 */
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import { generateSigningKeyPair, signImage } from '../ops/firmware-signature.js';

function fail(message: string, code: number): never {
  process.stderr.write(`${message}\n`);
  process.exit(code);
}

function parseShare(value: string): number {
  const share = Number(value);
  if (!(share >= 0 && share <= 1)) throw new InvalidArgumentError('must be a share between 0 and 1');
  return share;
}

function parseWaves(value: string): (number | string)[] {
  return value.split(',').map((w) => {
    const trimmed = w.trim();
    if (/^[0-9]+$/.test(trimmed)) return Number(trimmed);
    if (/^[0-9]+(\.[0-9]+)?%$/.test(trimmed)) return trimmed;
    throw new InvalidArgumentError(`"${trimmed}" is neither a count nor a percentage`);
  });
}

export function firmwareCommands(firmware: Command): void {
  firmware
    .command('keygen')
    .description('create an ed25519 signing key pair; print the public key for ops.firmwareKeys')
    .option('--private-key <file>', 'where to write the private key (PEM, mode 0600); keep it at HQ', 'firmware-key.pem')
    .option('--public-key <file>', 'where to write the public key (PEM)', 'firmware-key.pub.pem')
    .option('--force', 'overwrite existing files')
    .action((opts: { privateKey: string; publicKey: string; force?: boolean }) => {
      const pair = generateSigningKeyPair();
      const flag = opts.force ? 'w' : 'wx';
      try {
        writeFileSync(opts.privateKey, pair.privateKeyPem, { mode: 0o600, flag });
        writeFileSync(opts.publicKey, pair.publicKeyPem, { flag });
      } catch (err) {
        fail(`cannot write the key pair: ${(err as Error).message}${(err as NodeJS.ErrnoException).code === 'EEXIST' ? ' (use --force to overwrite)' : ''}`, 1);
      }
      process.stdout.write(`${pair.publicKeyBase64}\n`);
      process.stderr.write(
        `private key: ${opts.privateKey} (sign with it; never put it on a hub)\npublic key: ${opts.publicKey}\n` +
          `add the line above (or the PEM file's text) to ops.firmwareKeys in each hub's config\n`,
      );
    });

  firmware
    .command('sign')
    .description('sign a firmware image; with --image-version and --target, print a firmware.update job document')
    .argument('<image>', 'the firmware image file')
    .requiredOption('-k, --key <file>', 'the ed25519 private key (PEM) from `storehub firmware keygen`')
    // not --version: the root program's --version would answer it
    .option('--image-version <version>', 'the version the image installs (makes a job document)')
    .option('--target <id...>', 'device ids to update, in rollout order')
    .option('--url <url>', 'where hubs fetch the image; without it the image is embedded in the document')
    .option('--waves <sizes>', 'wave sizes, e.g. 1,10%,50%', parseWaves)
    .option('--abort-threshold <share>', 'share of a wave that may fail before the rollout stops (0..1)', parseShare)
    .option('--id <id>', 'job id (default: made up by the hub)')
    .action(
      (
        imageFile: string,
        opts: { key: string; imageVersion?: string; target?: string[]; url?: string; waves?: (number | string)[]; abortThreshold?: number; id?: string },
      ) => {
        let image: Buffer;
        let keyPem: string;
        try {
          image = readFileSync(imageFile);
          keyPem = readFileSync(opts.key, 'utf8');
        } catch (err) {
          fail(`cannot read: ${(err as Error).message}`, 2);
        }
        let signature: string;
        try {
          signature = signImage(image, keyPem);
        } catch (err) {
          fail(`cannot sign with ${opts.key}: ${(err as Error).message}`, 2);
        }
        const sha256 = createHash('sha256').update(image).digest('hex');
        if (!opts.imageVersion) {
          process.stdout.write(`${JSON.stringify({ image: { sha256, size: image.length }, signature }, null, 2)}\n`);
          return;
        }
        if (!opts.target?.length) fail('--target is needed with --image-version (the devices to update)', 2);
        const document = {
          type: 'firmware.update',
          ...(opts.id ? { id: opts.id } : {}),
          targets: opts.target,
          version: opts.imageVersion,
          image: { ...(opts.url ? { url: opts.url } : { data: image.toString('base64') }), sha256, size: image.length },
          signature,
          ...(opts.waves ? { waves: opts.waves } : {}),
          ...(opts.abortThreshold !== undefined ? { abortThreshold: opts.abortThreshold } : {}),
        };
        process.stdout.write(`${JSON.stringify(document, null, 2)}\n`);
      },
    );
}
