import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { isResponseSerializationError } from 'fastify-type-provider-zod';
import { ERROR_CODES, MalusError, problemType, type ErrorCode, type Issue, type Reason, type Violation } from '../errors/index.js';

// Every error leaves the server as RFC 9457 application/problem+json with a stable `type`.
// Only the messages of client-side (4xx) MalusErrors reach the client: they are written to be
// shown. A server-side MalusError keeps its code but not its message; anything else is logged
// with its stack on the server and answered with a generic 500.

export interface ProblemDocument {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: ErrorCode;
  instance?: string;
  issues?: Issue[];
  reasons?: Reason[];
  violations?: Violation[];
}

export function problemFor(error: MalusError, instance?: string): ProblemDocument {
  const problem: ProblemDocument = {
    type: problemType(error.code),
    title: ERROR_CODES[error.code].title,
    status: error.status,
    detail: error.message,
    code: error.code,
  };
  if (instance !== undefined) problem.instance = instance;
  if (error.issues.length > 0) problem.issues = [...error.issues];
  if (error.reasons.length > 0) problem.reasons = [...error.reasons];
  if (error.violations.length > 0) problem.violations = [...error.violations];
  return problem;
}

/** Maps fastify's own errors (body limits, parsing, timeouts) onto Malus codes. */
function fromFastifyError(error: FastifyError): MalusError | undefined {
  switch (error.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new MalusError('payload-too-large', 'request body is larger than the server accepts');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return new MalusError('malformed-body', 'request body must be a JSON document (application/json)');
    case 'FST_ERR_NOT_FOUND':
      return new MalusError('not-found', 'no such route');
    default:
      break;
  }
  if (error.statusCode === 408) return new MalusError('request-timeout', 'request took too long');
  if (error.statusCode === 404) return new MalusError('not-found', 'no such route');
  return undefined;
}

export function sendProblem(reply: FastifyReply, error: MalusError, request: FastifyRequest): FastifyReply {
  const problem = problemFor(error, request.url.split('?')[0]);
  return reply.code(problem.status).type('application/problem+json').send(JSON.stringify(problem));
}

export function handleError(error: unknown, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  if (error instanceof MalusError) {
    if (error.status < 500) return sendProblem(reply, error, request);
    // A server-side failure's message can name files and tables (the store's driver messages do):
    // it is logged here, and the client learns only the code.
    request.log.error({ err: error }, 'request failed');
    return sendProblem(reply, new MalusError(error.code, ERROR_CODES[error.code].title.toLowerCase()), request);
  }
  if (isResponseSerializationError(error)) {
    request.log.error({ err: error }, 'response did not match its schema');
    return sendProblem(reply, new MalusError('internal', 'internal error'), request);
  }
  const mapped = error instanceof Error ? fromFastifyError(error as FastifyError) : undefined;
  if (mapped !== undefined) return sendProblem(reply, mapped, request);
  request.log.error({ err: error }, 'unexpected error');
  return sendProblem(reply, new MalusError('internal', 'internal error'), request);
}
