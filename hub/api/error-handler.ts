/**
 * Every API error is `{ code, message }` with a stable code (docs/errors.md) and never a stack.
 * Unexpected errors are logged in full and answered as HUB_ERR_INTERNAL.
 */
import type { FastifyError, FastifyInstance } from 'fastify';
import { ErrorCodes, HubError } from '../sdk/errors.js';

export interface ErrorBody {
  code: string;
  message: string;
  details?: unknown;
}

export function installErrorHandler(app: FastifyInstance): void {
  app.setErrorHandler((error: FastifyError | HubError, request, reply) => {
    let status: number;
    let body: ErrorBody;
    if (error instanceof HubError) {
      status = error.status;
      body = { code: error.code, message: error.message };
    } else if ((error as FastifyError).validation) {
      status = 400;
      body = { code: 'HUB_ERR_API_VALIDATION', message: error.message, details: (error as FastifyError).validation };
    } else if ((error as FastifyError).code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      status = 413;
      body = { code: 'HUB_ERR_API_PAYLOAD_TOO_LARGE', message: ErrorCodes.HUB_ERR_API_PAYLOAD_TOO_LARGE.text };
    } else if (typeof (error as FastifyError).statusCode === 'number' && (error as FastifyError).statusCode! < 500) {
      status = (error as FastifyError).statusCode as number;
      body = { code: 'HUB_ERR_API_VALIDATION', message: error.message };
    } else {
      request.log.error({ err: error }, 'unhandled API error');
      status = 500;
      body = { code: 'HUB_ERR_INTERNAL', message: ErrorCodes.HUB_ERR_INTERNAL.text };
    }
    void reply.status(status).send(body);
  });
  app.setNotFoundHandler((request, reply) => {
    void reply.status(404).send({ code: 'HUB_ERR_API_NOT_FOUND', message: `no route ${request.method} ${request.url.split('?')[0]}` });
  });
}
