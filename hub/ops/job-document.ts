/**
 * Job documents: the envelope every type shares (`type`, optional `id`, optional `timeoutSeconds`)
 * plus the type's own fields, as one closed TypeBox schema per type checked with Ajv. A document
 * that fails is malformed: the reason names each problem by its path, as the config loader does.
 */
import { type TObject, Type } from '@sinclair/typebox';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import type { JobDocumentBase, JobType } from './job-types.js';

/** Job ids travel in MQTT topics (`jobs/<id>/status`) and URLs: letters, digits, . _ - only. */
export const JOB_ID_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$';
export const MAX_TIMEOUT_SECONDS = 30 * 24 * 3600;
const MAX_PROBLEMS_SHOWN = 5;

/** The envelope fields of a document of `type`. */
export function envelopeFields(type: string) {
  return {
    type: Type.Literal(type),
    id: Type.Optional(Type.String({ pattern: JOB_ID_PATTERN, description: 'chosen by the sender so that redelivery is harmless; made up when absent' })),
    timeoutSeconds: Type.Optional(
      Type.Number({ exclusiveMinimum: 0, maximum: MAX_TIMEOUT_SECONDS, description: 'from acceptance to TIMED_OUT; default ops.defaultJobTimeoutSeconds' }),
    ),
  };
}

export function documentSchema(jobType: JobType): TObject {
  return Type.Object(
    { ...envelopeFields(jobType.type), ...jobType.fields },
    { additionalProperties: false, title: jobType.type, description: jobType.summary },
  );
}

export type ParsedDocument =
  | { ok: true; doc: JobDocumentBase; jobType: JobType }
  /** `id` and `type` are what could be read from the document, so a rejection can still be reported under them. */
  | { ok: false; reason: string; id?: string; type?: string };

function pathOf(pointer: string): string {
  return pointer
    .split('/')
    .slice(1)
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
    .reduce((out, s) => (/^\d+$/.test(s) ? `${out}[${s}]` : out ? `${out}.${s}` : s), '');
}

function describe(e: ErrorObject): string {
  const path = pathOf(e.instancePath);
  const join = (key: string) => (path ? `${path}.${key}` : key);
  switch (e.keyword) {
    case 'additionalProperties':
      return `${join((e.params as { additionalProperty: string }).additionalProperty)}: unknown field`;
    case 'required':
      return `${join((e.params as { missingProperty: string }).missingProperty)}: is required`;
    default:
      return `${path || '(document)'}: ${e.message ?? e.keyword}`;
  }
}

export function formatProblems(problems: readonly string[]): string {
  const shown = problems.slice(0, MAX_PROBLEMS_SHOWN).join('; ');
  return problems.length > MAX_PROBLEMS_SHOWN ? `${shown}; and ${problems.length - MAX_PROBLEMS_SHOWN} more` : shown;
}

export class JobDocuments {
  private readonly validators = new Map<string, { jobType: JobType; validate: ValidateFunction }>();

  constructor(types: readonly JobType[]) {
    const ajv = new Ajv({ allErrors: true, strict: false });
    for (const jobType of types) {
      if (this.validators.has(jobType.type)) throw new Error(`job type ${jobType.type} is registered twice`);
      this.validators.set(jobType.type, { jobType, validate: ajv.compile(documentSchema(jobType)) });
    }
  }

  get types(): JobType[] {
    return [...this.validators.values()].map((v) => v.jobType);
  }

  type(name: string): JobType | undefined {
    return this.validators.get(name)?.jobType;
  }

  parse(raw: unknown): ParsedDocument {
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return { ok: false, reason: 'a job document must be a JSON object' };
    const record = raw as Record<string, unknown>;
    const id = typeof record.id === 'string' && new RegExp(JOB_ID_PATTERN).test(record.id) ? record.id : undefined;
    const known = [...this.validators.keys()].join(', ');
    const typeName = record.type;
    if (typeof typeName !== 'string') return { ok: false, reason: `type: is required (one of ${known})`, ...(id ? { id } : {}) };
    const entry = this.validators.get(typeName);
    if (!entry) return { ok: false, reason: `type: unknown job type "${typeName.slice(0, 64)}" (known: ${known})`, ...(id ? { id } : {}) };
    const malformed = (problems: string[]) => ({ ok: false as const, reason: formatProblems(problems), type: typeName, ...(id ? { id } : {}) });
    if (!entry.validate(raw)) return malformed((entry.validate.errors ?? []).map(describe));
    const doc = raw as JobDocumentBase;
    const problems = entry.jobType.problems?.(doc) ?? [];
    if (problems.length > 0) return malformed(problems);
    return { ok: true, doc, jobType: entry.jobType };
  }
}
