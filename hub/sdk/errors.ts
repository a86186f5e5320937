/**
 * One error class for the whole hub, with stable codes. Codes are part of the public contract:
 * the API returns them as `{code, message}` and docs/errors.md lists every one (a test checks that).
 * Retry logic asks `isTransient()` instead of matching on message strings.
 */
export const ErrorCodes = {
  HUB_ERR_CONFIG_INVALID: { status: 400, transient: false, text: 'configuration is invalid' },
  HUB_ERR_CONFIG_UNREADABLE: { status: 400, transient: false, text: 'configuration file cannot be read or parsed' },
  HUB_ERR_STORE_CORRUPT: { status: 500, transient: false, text: 'database file was corrupt and has been salvaged' },
  HUB_ERR_STORE_DISK_BUDGET: { status: 507, transient: true, text: 'the store has reached its disk budget' },
  HUB_ERR_STORE_MIGRATION: { status: 500, transient: false, text: 'a database migration failed' },
  HUB_ERR_STORE_NEWER_SCHEMA: { status: 500, transient: false, text: 'database was written by a newer storehub' },
  HUB_ERR_STORE_UNAVAILABLE: {
    status: 503,
    transient: true,
    text: 'the database file cannot be opened or read (locked, permissions, I/O); it is not corrupt, so it is left as it is',
  },
  HUB_ERR_STORE_SYNC: { status: 503, transient: true, text: 'a WAL sync failed; the hub restarts to recover the database' },
  HUB_ERR_BROKER_LISTEN: { status: 500, transient: false, text: 'the broker could not listen' },
  HUB_ERR_AUTH_MISSING: { status: 401, transient: false, text: 'a bearer token is required' },
  HUB_ERR_AUTH_INVALID: { status: 401, transient: false, text: 'the token is unknown or revoked' },
  HUB_ERR_AUTH_SCOPE: { status: 403, transient: false, text: 'the token lacks the required scope' },
  HUB_ERR_API_VALIDATION: { status: 400, transient: false, text: 'the request is invalid' },
  HUB_ERR_API_NOT_FOUND: { status: 404, transient: false, text: 'no such resource' },
  HUB_ERR_API_PAYLOAD_TOO_LARGE: { status: 413, transient: false, text: 'the request body is too large' },
  HUB_ERR_INTERNAL: { status: 500, transient: false, text: 'internal error' },
  HUB_ERR_SERVICE_STOPPED: { status: 503, transient: true, text: 'the service this request needs is not running (the hub is starting or stopping)' },
  HUB_ERR_LIFECYCLE_TIMEOUT: { status: 500, transient: false, text: 'a service did not stop in time' },
  HUB_ERR_DEVICE_EXISTS: { status: 409, transient: false, text: 'a device with this id already exists' },
  HUB_ERR_DEVICE_INVALID: { status: 400, transient: false, text: 'the device id or its topic filters are not a namespace of its own' },
  HUB_ERR_DEVICE_UNKNOWN: { status: 404, transient: false, text: 'no device with this id' },
  HUB_ERR_JOB_INVALID: { status: 400, transient: false, text: 'the job document is malformed' },
  HUB_ERR_JOB_UNKNOWN: { status: 404, transient: false, text: 'no job with this id' },
  HUB_ERR_JOB_EXISTS: { status: 409, transient: false, text: 'a different job with this id already exists' },
  HUB_ERR_JOB_FINISHED: { status: 409, transient: false, text: 'the job is already in a terminal state' },
  HUB_ERR_JOB_SERVICE_STOPPED: { status: 503, transient: true, text: 'remote operations are not running' },
} as const;

export type ErrorCode = keyof typeof ErrorCodes;

export class HubError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly context: Record<string, unknown>;

  constructor(code: ErrorCode, message?: string, options: { cause?: unknown; context?: Record<string, unknown> } = {}) {
    super(message ?? ErrorCodes[code].text, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'HubError';
    this.code = code;
    this.status = ErrorCodes[code].status;
    this.context = options.context ?? {};
  }
}

export function isHubError(err: unknown, code?: ErrorCode): err is HubError {
  return err instanceof HubError && (code === undefined || err.code === code);
}

/** True when retrying the same operation later may succeed. */
export function isTransient(err: unknown): boolean {
  return err instanceof HubError && ErrorCodes[err.code].transient;
}
