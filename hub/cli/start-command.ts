import { readFileSync } from 'node:fs';
import { deviceProblemLines } from './check-config-command.js';
import { Hub, STOP_TIMEOUT_MS } from '../hub.js';
import { SdNotify } from '../lifecycle/sd-notify.js';
import { createLogger } from '../observability/logger.js';
import { loadConfigOrExit } from './open-tool-store.js';

/**
 * `storehub start`: runs the hub until SIGTERM/SIGINT, then stops services in reverse within
 * STOP_TIMEOUT_MS. A second signal exits at once. An invalid config exits 2 before anything starts;
 * an unhandled error is logged as fatal and exits 1.
 */
export async function startCommand(opts: { config: string }): Promise<void> {
  const config = loadConfigOrExit(opts.config);
  // Exit 2 (the unit's RestartPreventExitStatus) on every config problem check-config reports, the
  // drivers' option checks included: restarting would only fail the same way again.
  const deviceProblems = deviceProblemLines(config.devices, opts.config, readFileSync(opts.config, 'utf8'));
  if (deviceProblems.length > 0) {
    for (const line of deviceProblems) process.stderr.write(`${line}\n`);
    process.exit(2);
  }
  const log = createLogger({ level: config.log.level });
  const notify = new SdNotify(process.env, log);
  const exitFailed = () => {
    notify.close();
    process.exit(1);
  };
  const fatal = (err: unknown, origin: string) => {
    log.fatal({ err, origin }, 'unhandled error; exiting');
    exitFailed();
  };
  process.on('uncaughtException', (err) => fatal(err, 'uncaughtException'));
  process.on('unhandledRejection', (err) => fatal(err, 'unhandledRejection'));

  const hub = new Hub(config, {
    log,
    // the hub has logged why; exiting at once, like a crash, lets SQLite recover from the disk
    onFatal: exitFailed,
    onSlowStep: (what, mayTakeMs) => notify.extendStartTimeout(mayTakeMs, what),
    onReady: () => {
      notify.ready(`serving store ${config.store.id}`);
      notify.startWatchdog();
    },
  });

  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) {
      log.warn({ signal }, 'second signal: exiting without waiting');
      process.exit(130);
    }
    stopping = true;
    log.info({ signal }, 'stopping');
    notify.stopping();
    hub.stop(STOP_TIMEOUT_MS).then(
      () => {
        notify.close();
        process.exit(0);
      },
      (err) => {
        log.fatal({ err }, 'stop did not finish cleanly; exiting 1');
        exitFailed();
      },
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));

  log.info({ config: opts.config, store: config.store.id, dataDir: config.dataDir }, 'starting storehub');
  try {
    await hub.start();
  } catch (err) {
    log.fatal({ err }, 'start failed');
    await hub.stop(STOP_TIMEOUT_MS).catch(() => undefined);
    notify.close();
    process.exit(1);
  }
}
