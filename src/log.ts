import { pino, type Logger, type LoggerOptions } from 'pino';

export type { Logger };

/** Paths that may hold a token or password; pino replaces their values. */
export const REDACT_PATHS = [
  'token',
  '*.token',
  'password',
  '*.password',
  'authorization',
  '*.authorization',
  'headers.authorization',
  'req.headers.authorization',
  'registryAuth.password',
  '*.registryAuth.password',
  'auth.password',
  '*.auth.password',
  'secretAccessKey',
  '*.secretAccessKey',
];

export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  const opts: LoggerOptions = {
    level,
    base: { app: 'swarm-utils' },
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  return destination ? pino(opts, destination) : pino(opts);
}
