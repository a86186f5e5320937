/**
 * `firmware.update`: a signed image rolled out to devices in waves. The image (inline or fetched) is
 * checked for size, SHA-256 and an ed25519 signature by a key in `ops.firmwareKeys` before any target
 * is touched; a bad or missing signature REJECTS the job. Each target then gets
 * `firmware.update { image, version }`, a health check (`status` ok and the registry showing the new
 * version, polled until `healthCheckTimeoutSeconds`), and `firmware.rollback` when either fails.
 * Installing a version is idempotent (the end state is absolute), so a restart runs an interrupted
 * target again; a target already running the version and healthy is not flashed twice.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { type Static, type TObject, Type } from '@sinclair/typebox';
import { decodeInlineImage, imageProblem, PermanentFetchError } from '../firmware-image.js';
import type { JobDocumentBase, JobType, JobTypeContext, Preparation, TargetOutcome } from '../job-types.js';
import { waveOfEach, wavesProblems } from '../rollout.js';
import { safeUrl } from '../../observability/safe-url.js';

const DEFAULT_HEALTH_CHECK_SECONDS = 60;
const HEALTH_POLL_MS = 1000;
const FETCH_ATTEMPTS = 3;
const FETCH_RETRY_MS = 1000;

const Base64 = (description: string) => Type.String({ pattern: '^[A-Za-z0-9+/]*={0,2}$', description });

const fields = {
  targets: Type.Array(Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$' }), {
    minItems: 1,
    maxItems: 10_000,
    uniqueItems: true,
    description: 'device ids, in rollout order',
  }),
  version: Type.String({ minLength: 1, maxLength: 64, description: 'the version the image installs; the health check expects the device to report it' }),
  image: Type.Object(
    {
      url: Type.Optional(Type.String({ pattern: '^https?://', description: 'where the hub fetches the image (exactly one of url and data)' })),
      data: Type.Optional(Base64('the image itself, base64')),
      sha256: Type.String({ pattern: '^[0-9a-fA-F]{64}$' }),
      size: Type.Integer({ minimum: 1, description: 'bytes' }),
    },
    { additionalProperties: false },
  ),
  signature: Type.Optional(Base64('ed25519 signature over the image bytes, base64 (storehub firmware sign)')),
  waves: Type.Optional(
    Type.Array(Type.Union([Type.Integer({ minimum: 1 }), Type.String({ pattern: '^[0-9]+(\\.[0-9]+)?%$' })]), {
      minItems: 1,
      description: 'size of each wave: a count of targets or a share ("10%"); targets left over form a last wave',
    }),
  ),
  abortThreshold: Type.Optional(
    Type.Number({ minimum: 0, maximum: 1, description: 'share of a wave that may fail; above it the rest of the rollout is canceled (default 0)' }),
  ),
  healthCheckTimeoutSeconds: Type.Optional(
    Type.Number({
      minimum: 0,
      maximum: 3600,
      description: `how long a device has to come back healthy on the new version (default ${DEFAULT_HEALTH_CHECK_SECONDS})`,
    }),
  ),
};

export type FirmwareUpdateDocument = JobDocumentBase & Static<TObject<typeof fields>>;

/** Fetches the image, retrying what may be transient; a permanent failure ends at once. */
async function fetchImage(doc: FirmwareUpdateDocument, ctx: JobTypeContext, signal: AbortSignal): Promise<Buffer> {
  const url = doc.image.url as string;
  for (let attempt = 1; ; attempt++) {
    try {
      return await ctx.fetchImage(url, { maxBytes: doc.image.size, signal });
    } catch (err) {
      if (err instanceof PermanentFetchError || attempt >= FETCH_ATTEMPTS || signal.aborted) throw err;
      ctx.log.warn({ url: safeUrl(url), attempt, err: (err as Error).message }, 'firmware image fetch failed; retrying');
      await sleep(FETCH_RETRY_MS * attempt, undefined, { signal });
    }
  }
}

/** Polls until the device answers `status`, reports the new version and is online, or the time is up. */
async function healthCheck(target: string, doc: FirmwareUpdateDocument, ctx: JobTypeContext, signal: AbortSignal): Promise<string | undefined> {
  const deadline = ctx.now() + (doc.healthCheckTimeoutSeconds ?? DEFAULT_HEALTH_CHECK_SECONDS) * 1000;
  for (;;) {
    signal.throwIfAborted();
    const status = await ctx.commander.execute(target, { name: 'status' });
    const running = ctx.commander.firmwareVersion(target);
    const health = ctx.commander.availability?.(target);
    const healthy = health === undefined || health.availability === 'online';
    if (status.ok && running === doc.version && healthy) return undefined;
    const problem = !status.ok
      ? `status failed: ${status.detail ?? 'no detail'}`
      : running !== doc.version
        ? `the device reports version ${running ?? '(none)'}, not ${doc.version}`
        : `the device is ${health?.availability}${health?.reason ? `: ${health.reason}` : ''}`;
    const left = deadline - ctx.now();
    if (left <= 0) return problem;
    await sleep(Math.min(HEALTH_POLL_MS, left), undefined, { signal });
  }
}

export const firmwareUpdateJob: JobType<FirmwareUpdateDocument, Buffer> = {
  type: 'firmware.update',
  summary: 'install a signed firmware image on devices, in waves, with a health check and rollback',
  fields,
  onInterrupted: 'retry',
  problems(doc) {
    const problems = wavesProblems(doc.waves);
    const { url, data } = doc.image;
    if ((url === undefined) === (data === undefined)) problems.push('image: give exactly one of url and data');
    if (data !== undefined && !decodeInlineImage(data)) problems.push('image.data: not valid base64');
    return problems;
  },
  plan(doc) {
    const waves = waveOfEach(doc.targets.length, doc.waves);
    return doc.targets.map((target, i) => ({ target, wave: waves[i] ?? 0 }));
  },
  admit(doc, ctx) {
    if (doc.image.data !== undefined) return imageProblem(decodeInlineImage(doc.image.data) ?? Buffer.alloc(0), doc.image, doc.signature, ctx.firmwareKeys);
    // a fetched image is verified in prepare(); what can be refused without it is refused now
    if (!doc.signature) return 'the image is not signed (no signature)';
    if (ctx.firmwareKeys.length === 0) return 'no firmware keys are configured (ops.firmwareKeys), so no image can be trusted';
    return undefined;
  },
  async prepare(doc, ctx, signal): Promise<Preparation<Buffer>> {
    let image: Buffer;
    if (doc.image.data !== undefined) {
      image = decodeInlineImage(doc.image.data) ?? Buffer.alloc(0);
    } else {
      try {
        image = await fetchImage(doc, ctx, signal);
      } catch (err) {
        if (signal.aborted) throw err;
        return { ok: false, status: 'FAILED', reason: `could not fetch the image: ${(err as Error).message}` };
      }
    }
    const problem = imageProblem(image, doc.image, doc.signature, ctx.firmwareKeys);
    return problem ? { ok: false, status: 'REJECTED', reason: problem } : { ok: true, prepared: image };
  },
  abortThreshold(doc) {
    return doc.abortThreshold ?? 0;
  },
  async execute(target, doc, image, ctx, signal): Promise<TargetOutcome> {
    const { commander } = ctx;
    const before = commander.firmwareVersion(target) ?? null;
    if (before === doc.version && (await commander.execute(target, { name: 'status' })).ok) {
      return { status: 'SUCCEEDED', result: { from: before, to: doc.version, alreadyRunning: true } };
    }
    const rollBack = async (problem: string): Promise<TargetOutcome> => {
      signal.throwIfAborted();
      const rollback = await commander.execute(target, { name: 'firmware.rollback' });
      const after = commander.firmwareVersion(target) ?? null;
      return {
        status: 'FAILED',
        reason: rollback.ok ? `${problem}; rolled back` : `${problem}; rollback failed too: ${rollback.detail ?? 'no detail'}`,
        result: { from: before, to: doc.version, rolledBack: rollback.ok, runningAfter: after },
      };
    };
    const update = await commander.execute(target, { name: 'firmware.update', args: { image, version: doc.version } });
    if (!update.ok) return rollBack(`the update failed: ${update.detail ?? 'no detail'}`);
    const unhealthy = await healthCheck(target, doc, ctx, signal);
    if (unhealthy) return rollBack(`health check failed: ${unhealthy}`);
    return { status: 'SUCCEEDED', result: { from: before, to: doc.version } };
  },
  redact(doc) {
    const { data, ...image } = doc.image;
    return { ...doc, image: data === undefined ? image : { ...image, data: `[${doc.image.size} bytes not shown]` } };
  },
};
