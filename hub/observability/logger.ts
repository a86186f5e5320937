/**
 * JSON logs with pino; readable (pino-pretty) when stdout is a terminal. Secrets are redacted by
 * path so a config or a request logged whole never leaks a password, key or token.
 */
import { type Logger, pino } from 'pino';

export type { Logger };

// pino's wildcards match one level each, so the secret-bearing keys are listed at every depth the
// hub logs them: top level, inside one object, and inside the config's devices[].options and
// devices[].transport (an http-stream transport's password).
const SECRET_KEYS = ['password', 'secret', 'token', 'authorization', 'key', 'privateKey'];
const REDACT = [
  ...SECRET_KEYS,
  ...SECRET_KEYS.map((k) => `*.${k}`),
  ...SECRET_KEYS.map((k) => `*.*.${k}`),
  ...SECRET_KEYS.map((k) => `*.*.*.${k}`),
  ...SECRET_KEYS.map((k) => `config.devices[*].options.${k}`),
  ...SECRET_KEYS.map((k) => `config.devices[*].transport.${k}`),
  'req.headers.authorization',
];

export interface LoggerOptions {
  level?: string;
  /** Force pretty or JSON output; default: pretty on a TTY. */
  pretty?: boolean;
  destination?: NodeJS.WritableStream;
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const base = { level: options.level ?? 'info', redact: { paths: REDACT, censor: '[redacted]' }, base: { pid: process.pid } };
  const pretty = options.pretty ?? (options.destination === undefined && process.stdout.isTTY === true);
  if (pretty) {
    return pino({ ...base, transport: { target: 'pino-pretty', options: { colorize: true, translateTime: 'SYS:HH:MM:ss.l' } } });
  }
  // Synchronous writes: a fatal error logged just before exit must reach the file.
  return pino(base, options.destination ?? pino.destination({ dest: 1, sync: true }));
}
