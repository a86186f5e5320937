/** Where the package lives and its version, whether running from source (hub/) or from dist/hub/. */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

function findRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    const candidate = join(dir, 'package.json');
    if (existsSync(candidate) && (JSON.parse(readFileSync(candidate, 'utf8')) as { name?: string }).name === 'storehub') return dir;
    dir = dirname(dir);
  }
  throw new Error('cannot find the storehub package root');
}

export const PACKAGE_ROOT = findRoot();
export const VERSION = (JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
export const DEFAULT_CONFIG = join(PACKAGE_ROOT, 'config', 'demo-store.yaml');
