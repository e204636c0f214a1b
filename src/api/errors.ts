import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { hasZodFastifySchemaValidationErrors } from 'fastify-type-provider-zod';
import { AppError, isAppError } from '../errors.js';

export interface ErrorBody {
  error: { code: string; message: string; details?: unknown };
  requestId: string;
}

/** The one place errors become HTTP answers. Client mistakes are 4xx with a code; nothing leaks a stack. */
export function errorHandler(err: FastifyError | Error, req: FastifyRequest, reply: FastifyReply): FastifyReply {
  const e = toHttpError(err);
  if (e.status >= 500 && e.code === 'INTERNAL') req.log.error({ err }, 'unexpected error');
  else req.log.info({ code: e.code, status: e.status }, e.message);
  const details = e.details !== undefined ? { details: e.details } : {};
  const body: ErrorBody = { error: { code: e.code, message: e.message, ...details }, requestId: req.id };
  return reply.code(e.status).send(body);
}

interface HttpError {
  code: string;
  message: string;
  details?: unknown;
  status: number;
}

const http = (e: AppError, status = e.status): HttpError => ({ code: e.code, message: e.message, details: e.details, status });

function toHttpError(err: FastifyError | Error): HttpError {
  if (isAppError(err)) return http(err);
  if (hasZodFastifySchemaValidationErrors(err)) {
    const details = err.validation.map((v) => ({
      field: [v.instancePath.replace(/^\//, '').replace(/\//g, '.')].filter(Boolean).join('') || fieldFromParams(v.params),
      message: v.message ?? 'invalid',
      in: (err as FastifyError).validationContext,
    }));
    const msg = `invalid ${(err as FastifyError).validationContext ?? 'request'}: ${details.map((d) => `${d.field || '(root)'}: ${d.message}`).join('; ')}`;
    return http(new AppError('VALIDATION', msg, details));
  }
  const fe = err as FastifyError;
  switch (fe.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return http(new AppError('VALIDATION', 'the request body is too large', [{ field: '(body)', message: 'too large' }]));
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return http(new AppError('VALIDATION', 'the request body must be JSON (Content-Type: application/json)'));
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return http(new AppError('VALIDATION', 'the JSON body is empty'));
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return http(new AppError('VALIDATION', 'the Content-Length does not match the body'));
  }
  if (err instanceof SyntaxError || fe.statusCode === 400) return http(new AppError('VALIDATION', `the request is malformed: ${err.message}`));
  if (fe.statusCode && fe.statusCode >= 400 && fe.statusCode < 500) {
    return http(new AppError(fe.statusCode === 404 ? 'NOT_FOUND' : 'VALIDATION', err.message), fe.statusCode);
  }
  return http(new AppError('INTERNAL', 'internal error'));
}

function fieldFromParams(params: unknown): string {
  const p = params as { missingProperty?: string; additionalProperty?: string; keys?: string[] } | undefined;
  return p?.missingProperty ?? p?.additionalProperty ?? p?.keys?.join(',') ?? '';
}
