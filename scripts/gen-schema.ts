/**
 * Writes config/schema.json from ConfigSchema (hub/config/schema.ts), the one source of the config
 * format. Run `npm run gen:schema` (tsx scripts/gen-schema.ts) after changing the schema; `--check`
 * only compares and exits 1 when the file on disk is stale; `--out FILE` writes elsewhere.
 * test/config.test.ts fails when config/schema.json differs from renderSchema(), so a schema change
 * cannot ship without it.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { ConfigSchema } from '../hub/config/schema.js';

export const SCHEMA_PATH = fileURLToPath(new URL('../config/schema.json', import.meta.url));

type Json = Record<string, unknown>;

/**
 * The loader fills defaults before it validates, so in ConfigSchema a key with a default is "required".
 * The published schema describes the file as written (editors check it as you type): a key with a
 * default may be left out there.
 */
function optionalDefaults(node: unknown): void {
  if (Array.isArray(node)) {
    for (const item of node) optionalDefaults(item);
    return;
  }
  if (typeof node !== 'object' || node === null) return;
  const schema = node as Json;
  const properties = schema.properties as Record<string, Json> | undefined;
  if (properties && Array.isArray(schema.required)) {
    const required = (schema.required as string[]).filter((k) => properties[k]?.default === undefined);
    if (required.length > 0) schema.required = required;
    else delete schema.required;
  }
  for (const value of Object.values(schema)) optionalDefaults(value);
}

/** The JSON schema as written to config/schema.json: 2-space indent, trailing newline. */
export function renderSchema(): string {
  // JSON.stringify drops TypeBox's symbol-keyed metadata, leaving plain JSON schema (draft-07, what ajv checks).
  const schema = JSON.parse(JSON.stringify(ConfigSchema)) as Json;
  optionalDefaults(schema);
  const { $id, title, ...rest } = schema;
  const published = {
    $schema: 'http://json-schema.org/draft-07/schema#',
    $id,
    $comment: 'Generated from hub/config/schema.ts by `npm run gen:schema`. Do not edit: change the schema and regenerate.',
    title,
    ...rest,
  };
  return `${JSON.stringify(published, null, 2)}\n`;
}

/**
 * `gen-schema.ts [--check] [--out FILE]`: write the schema (default config/schema.json), or with
 * --check only compare and return 1 when the file is missing or stale. Returns the exit code.
 */
export function main(argv: string[], report: (line: string) => void = (l) => process.stderr.write(`${l}\n`)): number {
  const at = argv.indexOf('--out');
  const file = (at >= 0 ? argv[at + 1] : undefined) ?? SCHEMA_PATH;
  const text = renderSchema();
  if (argv.includes('--check')) {
    let current: string | undefined;
    try {
      current = readFileSync(file, 'utf8');
    } catch {
      // missing counts as stale
    }
    if (current === text) return 0;
    report(`${file} is out of date: run npm run gen:schema`);
    return 1;
  }
  writeFileSync(file, text);
  report(`wrote ${file}`);
  return 0;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.exitCode = main(process.argv.slice(2));
}
