import { apiBase, apiDispatcher, fetchApi } from './api-client.js';
import { loadConfigOrExit } from './open-tool-store.js';

/** `storehub status`: readiness from /healthz, and with a read token the full status. */
export async function statusCommand(opts: { config: string; token?: string }): Promise<void> {
  const config = loadConfigOrExit(opts.config);
  const dispatcher = apiDispatcher(config);
  const target = { base: apiBase(config), ...(dispatcher ? { dispatcher } : {}) };
  const base = target.base;
  let health: { status: string; checks: Record<string, { ok: boolean; detail?: string }> };
  try {
    health = (await (await fetchApi(target, '/healthz')).json()) as typeof health;
  } catch (err) {
    process.stderr.write(`storehub is not reachable at ${base}: ${(err as Error).message}\n`);
    process.exit(3);
  }
  process.stdout.write(`storehub at ${base}: ${health.status}\n`);
  for (const [name, check] of Object.entries(health.checks))
    process.stdout.write(`  ${check.ok ? 'ok  ' : 'FAIL'} ${name}${check.detail ? `: ${check.detail}` : ''}\n`);
  const token = opts.token ?? process.env.STOREHUB_TOKEN;
  if (token) {
    const res = await fetchApi(target, '/api/v1/status', { headers: { authorization: `Bearer ${token}` } });
    const text = await res.text();
    let body: Record<string, unknown> = {};
    try {
      body = JSON.parse(text) as Record<string, unknown>;
    } catch {
      body = { message: text.slice(0, 200) };
    }
    if (!res.ok) {
      // a revoked or mistyped token (or a failing hub) must not look like a healthy answer
      const what = res.status === 401 || res.status === 403 ? 'the API refused the token' : 'the status request failed';
      process.stderr.write(`${what}: ${res.status} ${String(body.code ?? '')} ${String(body.message ?? '')}\n`);
      process.exitCode = 1;
      return;
    }
    process.stdout.write(`${JSON.stringify(body, null, 2)}\n`);
  }
  process.exitCode = health.status === 'ok' ? 0 : 1;
}
