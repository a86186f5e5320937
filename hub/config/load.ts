/**
 * Reads a YAML config: parse, migrate to the current version, fill defaults, validate.
 * Problems come back as one line each, naming the key path and, when the YAML says, the line.
 */
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { Value } from '@sinclair/typebox/value';
import { Ajv, type ErrorObject } from 'ajv';
import { isMap, isSeq, LineCounter, type Node, parseDocument } from 'yaml';
import { HubError } from '../sdk/errors.js';
import { migrateConfig } from './migrations.js';
import { ConfigSchema, type DeviceConfig, type HubConfig } from './schema.js';

export interface ConfigProblem {
  path: string;
  line?: number;
  message: string;
}

export interface LoadedConfig {
  config: HubConfig;
  /** Descriptions of the migrations applied; non-empty means the file on disk is outdated. */
  migrations: string[];
  source: string;
}

// Defaults are filled by TypeBox (Value.Default), which also reaches into union branches; ajv only checks.
const ajv = new Ajv({ allErrors: true, strict: false, verbose: true });
const validate = ajv.compile<HubConfig>(ConfigSchema);

/** `/devices/0/transport` -> `devices[0].transport` */
function keyPath(segments: (string | number)[]): string {
  let out = '';
  for (const s of segments) out += typeof s === 'number' ? `[${s}]` : out === '' ? s : `.${s}`;
  return out || '(root)';
}

function pointerSegments(pointer: string): (string | number)[] {
  if (pointer === '') return [];
  return pointer
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
    .map((s) => (/^\d+$/.test(s) ? Number(s) : s));
}

/** Finds the YAML node (key node when `asKey`) at a path, to report its line. */
function nodeAt(root: Node | null, segments: (string | number)[], asKey: boolean): Node | undefined {
  let node: unknown = root;
  for (let i = 0; i < segments.length; i++) {
    const seg = segments[i];
    const last = i === segments.length - 1;
    if (isMap(node)) {
      const pair = node.items.find((p) => (p.key as { value?: unknown } | null)?.value === seg);
      if (!pair) return isMap(node) || isSeq(node) ? (node as Node) : undefined;
      node = last && asKey ? pair.key : pair.value;
    } else if (isSeq(node) && typeof seg === 'number') {
      node = node.items[seg];
    } else {
      return node as Node | undefined;
    }
  }
  return node as Node | undefined;
}

function describeAjvError(e: ErrorObject): Reported | undefined {
  const segments = pointerSegments(e.instancePath);
  switch (e.keyword) {
    case 'additionalProperties': {
      const key = (e.params as { additionalProperty: string }).additionalProperty;
      return { segments: [...segments, key], message: 'unknown key', asKey: true };
    }
    case 'required': {
      const key = (e.params as { missingProperty: string }).missingProperty;
      // A key with a default is only "missing" when its union branch failed for another reason.
      const declared = (e.parentSchema as { properties?: Record<string, { default?: unknown }> } | undefined)?.properties?.[key];
      if (declared?.default !== undefined) return undefined;
      return { segments: [...segments, key], message: 'is required', asKey: false };
    }
    case 'const':
      return { segments, message: `must be ${JSON.stringify((e.params as { allowedValue: unknown }).allowedValue)}`, asKey: false };
    default:
      return { segments, message: e.message ?? e.keyword, asKey: false };
  }
}

type Reported = { segments: (string | number)[]; message: string; asKey: boolean };

/**
 * Unions (transport types, log levels) make ajv report a complaint from every branch. Collapse them:
 * for a union of objects tagged by `type`, keep only the errors of the branch whose tag matched;
 * for a union of literals, say which values are allowed.
 */
function collapseUnions(errors: ErrorObject[]): Reported[] {
  const unions = errors.filter((e) => e.keyword === 'anyOf');
  const under = (e: ErrorObject, u: ErrorObject) =>
    e !== u && e.schemaPath.startsWith(`${u.schemaPath}/`) && (e.instancePath === u.instancePath || e.instancePath.startsWith(`${u.instancePath}/`));
  const out: Reported[] = errors.filter((e) => e.keyword !== 'anyOf' && !unions.some((u) => under(e, u))).flatMap((e) => describeAjvError(e) ?? []);
  for (const u of unions) {
    if (unions.some((o) => under(u, o))) continue; // reported through its outer union's chosen branch
    const branches = new Map<string, ErrorObject[]>();
    for (const e of errors.filter((x) => under(x, u))) {
      const branch = e.schemaPath.slice(u.schemaPath.length + 1).split('/')[0] ?? '';
      branches.set(branch, [...(branches.get(branch) ?? []), e]);
    }
    const tagPath = `${u.instancePath}/type`;
    const isTagMismatch = (e: ErrorObject) => e.keyword === 'const' && e.instancePath === tagPath;
    const allowed = (pred: (e: ErrorObject) => boolean) =>
      [...branches.values()]
        .flat()
        .filter(pred)
        .map((e) => JSON.stringify((e.params as { allowedValue: unknown }).allowedValue));
    const literalMismatch = (e: ErrorObject) => e.keyword === 'const' && e.instancePath === u.instancePath;
    const matched = [...branches.values()].find((errs) => !errs.some(isTagMismatch) && !errs.some(literalMismatch));
    if (matched) {
      out.push(...collapseUnions(matched));
    } else if ([...branches.values()].flat().some(isTagMismatch)) {
      out.push({ segments: pointerSegments(tagPath), message: `must be one of ${allowed(isTagMismatch).join(', ')}`, asKey: false });
    } else {
      const values = allowed(literalMismatch);
      out.push({
        segments: pointerSegments(u.instancePath),
        message: values.length ? `must be one of ${values.join(', ')}` : (u.message ?? 'anyOf'),
        asKey: false,
      });
    }
  }
  return out;
}

/**
 * Value.Default merges a written object into an object default with Object.assign, arrays included:
 * `devices:` written as a mapping (a forgotten `-`) would become `[]` and pass, and a list under
 * `options` would become an object. Put such values back as written so validation reports them.
 */
function keepMismatchedContainers(filled: unknown, raw: unknown): unknown {
  if (typeof raw !== 'object' || raw === null || typeof filled !== 'object' || filled === null) return filled;
  if (Array.isArray(raw) !== Array.isArray(filled)) return raw;
  const out = filled as Record<string, unknown>;
  for (const [k, v] of Object.entries(raw)) if (Object.hasOwn(out, k)) out[k] = keepMismatchedContainers(out[k], v);
  return filled;
}

export interface ParsedConfig {
  loaded?: LoadedConfig;
  problems: ConfigProblem[];
  /**
   * When the file fails the schema: the devices whose own entry passed it (defaults filled), with
   * their index in the file, so their drivers' option checks can be reported in the same run.
   */
  shapeValidDevices?: { index: number; device: DeviceConfig }[];
}

export function parseConfigText(text: string, source = '<config>'): ParsedConfig {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false });
  const lineOf = (node: Node | undefined): number | undefined => (node?.range ? lineCounter.linePos(node.range[0]).line : undefined);
  if (doc.errors.length > 0) {
    return {
      // prettyErrors is off (it would fold a code excerpt into the message), so yaml leaves linePos unset.
      // After the first syntax error the parser mostly reports its consequences: show the first few.
      problems: doc.errors.slice(0, 3).map((e) => ({ path: '(yaml)', line: lineCounter.linePos(e.pos[0]).line, message: e.message.split('\n')[0] ?? e.code })),
    };
  }
  const raw = doc.toJS() as unknown;
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    return { problems: [{ path: '(root)', line: 1, message: 'must be a mapping of keys to values' }] };
  }
  const migrated = migrateConfig(raw as Record<string, unknown>);
  if (typeof migrated === 'string') {
    return { problems: [{ path: 'version', line: lineOf(nodeAt(doc.contents, ['version'], false)), message: migrated.replace(/^version: /, '') }] };
  }
  const candidate = keepMismatchedContainers(Value.Default(ConfigSchema, structuredClone(migrated.raw)), migrated.raw);
  if (validate(candidate)) {
    return { loaded: { config: candidate, migrations: migrated.applied, source }, problems: [] };
  }
  const seen = new Set<string>();
  const problems: ConfigProblem[] = [];
  // Line numbers point into the file as written; after a migration renamed keys they may be absent.
  for (const d of collapseUnions(validate.errors ?? [])) {
    const path = keyPath(d.segments);
    const key = `${path}|${d.message}`;
    if (seen.has(key)) continue;
    seen.add(key);
    problems.push({ path, line: lineOf(nodeAt(doc.contents, d.segments, d.asKey)), message: d.message });
  }
  return { problems, shapeValidDevices: devicesWithoutErrors(candidate, validate.errors ?? []) };
}

function devicesWithoutErrors(candidate: unknown, errors: ErrorObject[]): { index: number; device: DeviceConfig }[] {
  const devices = (candidate as { devices?: unknown }).devices;
  if (!Array.isArray(devices)) return [];
  const broken = new Set<number>();
  for (const e of errors) {
    const m = /^\/devices\/(\d+)(?:\/|$)/.exec(e.instancePath);
    if (m) broken.add(Number(m[1]));
  }
  return devices.flatMap((device, index) => (broken.has(index) ? [] : [{ index, device: device as DeviceConfig }]));
}

/**
 * The line of a key path such as `devices[2].options` in a config text, for problems found after
 * the schema passed (a driver's option checks); the nearest existing parent when the key is absent.
 */
export function lineOfPath(text: string, path: string): number | undefined {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false });
  const segments = path.split('.').flatMap((part) => {
    const m = /^([^[]*)((?:\[\d+\])*)$/.exec(part);
    if (!m) return [part];
    const indexes = [...(m[2] ?? '').matchAll(/\[(\d+)\]/g)].map((i) => Number(i[1]));
    return [...(m[1] ? [m[1]] : []), ...indexes];
  });
  const node = nodeAt(doc.contents, segments, false);
  return node?.range ? lineCounter.linePos(node.range[0]).line : undefined;
}

export function formatProblem(p: ConfigProblem, file?: string): string {
  const where = p.line !== undefined ? ` (${file ? `${file}:` : 'line '}${p.line})` : '';
  return `${p.path}: ${p.message}${where}`;
}

/** Loads and validates a config file; throws HubError with every problem in its context. */
export function loadConfigFile(file: string): LoadedConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (cause) {
    throw new HubError('HUB_ERR_CONFIG_UNREADABLE', `cannot read config ${file}: ${(cause as Error).message}`, { cause });
  }
  const { loaded, problems } = parseConfigText(text, file);
  if (!loaded) {
    throw new HubError(
      'HUB_ERR_CONFIG_INVALID',
      `config ${file} has ${problems.length} problem(s):\n${problems.map((p) => formatProblem(p, file)).join('\n')}`,
      {
        context: { problems },
      },
    );
  }
  // dataDir is relative to the config file, so a config and its data travel together.
  const base = dirname(resolve(file));
  if (!isAbsolute(loaded.config.dataDir)) loaded.config.dataDir = resolve(base, loaded.config.dataDir);
  return loaded;
}
