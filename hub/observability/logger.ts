/**
 * JSON logs with pino; readable (pino-pretty) when stdout is a terminal. Secrets are redacted by
 * path so a config or a request logged whole never leaks a password, key or token.
 */
import { type Logger, pino } from 'pino';

export type { Logger };

const REDACT = [
  'password',
  'secret',
  'token',
  'authorization',
  '*.password',
  '*.secret',
  '*.token',
  '*.key',
  '*.authorization',
  'req.headers.authorization',
  'config.cloud.password',
  'config.broker.tls.key',
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
