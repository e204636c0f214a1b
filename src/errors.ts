/** Error codes (README "HTTP API"). Every error swarm-utils raises carries one. */
export const ERROR_CODES = [
  'VALIDATION',
  'UNAUTHORIZED',
  'FORBIDDEN',
  'NOT_FOUND',
  'NOT_ENABLED',
  'UNSUPPORTED',
  'LOCK_TIMEOUT',
  'EXEC_FAILED',
  'TIMEOUT',
  'DOCKER_ERROR',
  'S3_ERROR',
  'REGISTRY_ERROR',
  'UPDATE_FAILED',
  'CANCELED',
  'DRILL_FAILED',
  'RESTORE_FAILED',
  'SHUTTING_DOWN',
  'PAYLOAD_TOO_LARGE',
  // a hostname names several swarm nodes (a node that left and re-joined keeps a Down entry): use the id
  'AMBIGUOUS_NODE',
  'INTERNAL',
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

const HTTP_STATUS: Record<ErrorCode, number> = {
  VALIDATION: 400,
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  NOT_ENABLED: 422,
  UNSUPPORTED: 422,
  LOCK_TIMEOUT: 409,
  EXEC_FAILED: 502,
  TIMEOUT: 504,
  DOCKER_ERROR: 502,
  S3_ERROR: 502,
  REGISTRY_ERROR: 502,
  UPDATE_FAILED: 502,
  CANCELED: 409,
  DRILL_FAILED: 502,
  RESTORE_FAILED: 502,
  SHUTTING_DOWN: 503,
  PAYLOAD_TOO_LARGE: 413,
  AMBIGUOUS_NODE: 409,
  INTERNAL: 500,
};

export class AppError extends Error {
  readonly code: ErrorCode;
  readonly details: unknown;
  constructor(code: ErrorCode, message: string, details?: unknown) {
    super(message);
    this.name = 'AppError';
    this.code = code;
    this.details = details;
  }
  get status(): number {
    return HTTP_STATUS[this.code];
  }
}

export const isAppError = (e: unknown): e is AppError => e instanceof AppError;
