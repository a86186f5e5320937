/**
 * A service whose code is loaded only when it starts. Optional parts of the hub (the simulated
 * devices, the in-process reference receiver) pull in libraries a production store does not
 * run; importing them at start would cost every hub their memory (see docs/benchmarks.md, idle RSS).
 */
import type { Service } from './lifecycle.js';

export function lazyService(name: string, load: () => Promise<Service>): Service {
  let service: Service | undefined;
  return {
    name,
    async start() {
      const loaded = await load();
      await loaded.start();
      service = loaded;
    },
    async stop() {
      await service?.stop();
      service = undefined;
    },
  };
}
