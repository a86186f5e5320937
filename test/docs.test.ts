import { readFileSync } from 'node:fs';
import t from 'tap';
import { createMetrics } from '../hub/observability/metrics.js';
import { ErrorCodes } from '../hub/sdk/errors.js';

const read = (f: string) => readFileSync(new URL(`../${f}`, import.meta.url), 'utf8');

t.test('every error code is documented in docs/errors.md', async (t) => {
  const doc = read('docs/errors.md');
  for (const code of Object.keys(ErrorCodes)) t.ok(doc.includes(`\`${code}\``), code);
});

t.test('every hub metric is documented in docs/metrics.md', async (t) => {
  const doc = read('docs/metrics.md');
  const metrics = createMetrics();
  const names = (await metrics.registry.getMetricsAsJSON()).map((m) => m.name).filter((n) => !/^storehub_(process|nodejs)_/.test(n));
  t.ok(names.length > 10);
  for (const name of names) t.ok(doc.includes(`\`${name}\``), name);
});

t.test('the README opens with the two commands', async (t) => {
  const readme = read('README.md');
  const quick = readme.slice(0, readme.indexOf('## Install'));
  t.match(quick, /npm ci && npm start/);
  t.match(quick, /npm test/);
  t.match(read('.ci/run'), /npm test/);
});
