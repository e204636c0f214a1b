import httpStatus, { type IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { hasZodFastifySchemaValidationErrors } from 'fastify-type-provider-zod';
import { AppError, isAppError } from '../errors.js';

export interface ErrorBody {
  error: { code: string; message: string; details?: unknown };
  requestId: string;
}

/** what is read (and dropped) of a body the answer does not need, so that a client still sending reads its answer */
export const MAX_DRAIN_BYTES = 32 * 1024 * 1024;

/**
 * Reads the rest of a request body that will not be used (an error answered before it was read: too
 * large, no token). Answering while the client still sends makes Node close the connection under it,
 * and the client sees a reset instead of its 4xx. Up to `max` bytes are read; false past that.
 */
export function drainBody(raw: IncomingMessage, max = MAX_DRAIN_BYTES): Promise<boolean> {
  if (raw.complete || raw.readableEnded || raw.destroyed) return Promise.resolve(true);
  return new Promise((resolve) => {
    let n = 0;
    const done = (ok: boolean) => {
      raw.off('data', onData);
      raw.off('end', onEnd);
      raw.off('error', onEnd);
      raw.off('close', onEnd);
      resolve(ok);
    };
    const onData = (c: Buffer | string) => {
      n += c.length;
      if (n > max) done(false);
    };
    const onEnd = () => done(true);
    raw.on('data', onData);
    raw.on('end', onEnd);
    raw.on('error', onEnd);
    raw.on('close', onEnd);
    raw.resume();
  });
}

/** sends an error answer once the unread body is drained (or, past the cap, with Connection: close) */
export async function sendAfterDrain(req: FastifyRequest, reply: FastifyReply, status: number, body: unknown): Promise<FastifyReply> {
  if (!(await drainBody(req.raw))) reply.header('connection', 'close');
  return reply.code(status).send(body);
}

/** The one place errors become HTTP answers. Client mistakes are 4xx with a code; nothing leaks a stack. */
export async function errorHandler(err: FastifyError | Error, req: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
  const e = toHttpError(err);
  if (e.status >= 500 && e.code === 'INTERNAL') req.log.error({ err }, 'unexpected error');
  else req.log.info({ code: e.code, status: e.status }, e.message);
  const details = e.details !== undefined ? { details: e.details } : {};
  const body: ErrorBody = { error: { code: e.code, message: e.message, ...details }, requestId: req.id };
  return sendAfterDrain(req, reply, e.status, body);
}

/**
 * What Node's parser refuses before a request exists (headers or URL over 16 kB, a malformed request
 * line): a JSON 4xx like every other, then the connection is closed once the client has had time to
 * read it (never a bare reset under a client still sending).
 */
export function clientErrorHandler(err: Error & { code?: string }, socket: Duplex): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const [status, code, message] =
    err.code === 'HPE_HEADER_OVERFLOW'
      ? [431, 'VALIDATION', 'the request line or headers are too large (more than 16 kB): send long values in a JSON body']
      : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? [408, 'TIMEOUT', 'the request was not received in time']
        : [400, 'VALIDATION', 'the request is not valid HTTP'];
  const text = JSON.stringify({ error: { code, message }, requestId: null });
  if (socket.writable) {
    socket.write(
      `HTTP/1.1 ${status} ${httpStatus.STATUS_CODES[status]}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(text)}\r\nConnection: close\r\n\r\n${text}`,
    );
  }
  // what the client still sends is read and dropped; the connection ends when it is done (or soon)
  socket.on('data', () => undefined);
  socket.on('error', () => undefined);
  socket.end();
  setTimeout(() => socket.destroy(), 2_000).unref();
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
