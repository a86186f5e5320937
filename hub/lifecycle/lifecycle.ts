/**
 * Starts services in dependency order and stops the started ones in reverse under one deadline.
 * A stop requested while start() is still running waits for the step in progress, skips the rest,
 * and stops what did start.
 */
import type { Logger } from '../observability/logger.js';
import { HubError } from '../sdk/errors.js';

export interface Service {
  readonly name: string;
  start(): Promise<void>;
  stop(): Promise<void>;
}

export class Lifecycle {
  private readonly started: Service[] = [];
  private starting: Promise<void> | undefined;
  private stopRequested = false;

  constructor(private readonly log: Logger) {}

  start(services: Service[]): Promise<void> {
    this.starting = (async () => {
      for (const service of services) {
        if (this.stopRequested) return;
        const t0 = performance.now();
        await service.start();
        this.started.push(service);
        this.log.debug({ service: service.name, ms: Math.round(performance.now() - t0) }, 'service started');
      }
    })();
    return this.starting;
  }

  /** True once stop() was called: a start step finishing after it must not announce readiness. */
  get stopping(): boolean {
    return this.stopRequested;
  }

  /**
   * Stops in reverse order; rejects with HUB_ERR_LIFECYCLE_TIMEOUT if the deadline passes. The
   * deadline also covers waiting for a start still in progress, so a hung start cannot hang stop.
   * A service whose stop fails does not keep the others running: every service is stopped, then
   * stop() rejects with the failures, so the process does not exit as if all went well.
   */
  async stop(timeoutMs: number): Promise<void> {
    this.stopRequested = true;
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new HubError('HUB_ERR_LIFECYCLE_TIMEOUT', `services did not stop within ${timeoutMs} ms`)), timeoutMs);
    });
    const stopAll = (async () => {
      await this.starting?.catch(() => undefined);
      const failures: Error[] = [];
      while (this.started.length > 0) {
        const service = this.started.pop() as Service;
        try {
          await service.stop();
          this.log.debug({ service: service.name }, 'service stopped');
        } catch (err) {
          this.log.error({ err, service: service.name }, 'service failed to stop cleanly');
          failures.push(err as Error);
        }
      }
      if (failures.length > 0) {
        throw new AggregateError(failures, `${failures.length} service(s) failed to stop cleanly: ${failures.map((e) => e.message).join('; ')}`);
      }
    })();
    try {
      await Promise.race([stopAll, deadline]);
    } finally {
      clearTimeout(timer);
    }
  }
}
