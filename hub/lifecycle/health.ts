/**
 * Readiness: each service registers named checks; the hub is ready when every check passes.
 * /healthz answers 503 naming the failing checks, so store IT sees *why* without reading logs.
 */
export interface CheckResult {
  ok: boolean;
  detail?: string;
}

export type Check = () => CheckResult;

export interface HealthReport {
  ready: boolean;
  checks: Record<string, CheckResult>;
}

export class Health {
  private readonly checks = new Map<string, Check>();

  register(name: string, check: Check): () => void {
    this.checks.set(name, check);
    return () => this.checks.delete(name);
  }

  report(): HealthReport {
    const checks: Record<string, CheckResult> = {};
    let ready = this.checks.size > 0;
    for (const [name, check] of this.checks) {
      let result: CheckResult;
      try {
        result = check();
      } catch (err) {
        result = { ok: false, detail: (err as Error).message };
      }
      checks[name] = result;
      if (!result.ok) ready = false;
    }
    return { ready, checks };
  }
}
