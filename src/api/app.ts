import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import crypto from 'node:crypto';
import swagger from '@fastify/swagger';
import { jsonSchemaTransform, serializerCompiler, validatorCompiler } from 'fastify-type-provider-zod';
import type { Logger } from '../log.js';
import type { Authorizer, Caller } from './auth.js';
import { clientErrorHandler, errorHandler, sendAfterDrain } from './errors.js';
import type { JobsService } from './jobs-service.js';
import { jobRoutes } from './routes/jobs.js';
import { healthRoutes, type ReadinessCheck } from './routes/health.js';
import { statusRoutes } from './routes/status.js';
import type { StatusService } from './status-service.js';
import type { Metrics } from './metrics.js';
import { consoleRoutes } from './routes/console.js';
import { servicesRoutes } from './routes/services.js';
import type { ServicesService } from './services-service.js';
import { backupsRoutes } from './routes/backups.js';
import type { BackupsService } from './backups-service.js';
import { version } from '../version.js';
import type { Config } from '../config.js';
import { overviewRoutes } from './routes/overview.js';
import type { ServiceInfo } from '../swarm/port.js';

declare module 'fastify' {
  interface FastifyRequest {
    caller: Caller | null;
  }
  interface FastifyContextConfig {
    /** the route needs a token (checked in onRequest, before the body is read) */
    auth?: boolean;
    /** the route also admits SWARM_UTILS_METRICS_TOKEN_LIST tokens */
    metrics?: boolean;
  }
}

export interface AppDeps {
  log: Logger;
  auth: Authorizer;
  jobs: JobsService;
  status: StatusService;
  services: ServicesService;
  backups: BackupsService;
  metrics: Metrics;
  ready: ReadinessCheck;
  /** how long a waitRes request waits for its job */
  waitLimitMs: number;
  /** summarised by GET /status */
  config: Config;
  /** GET /status: the services whose schedules and offen labels it reports */
  listServices?: () => Promise<ServiceInfo[]>;
}

export const BODY_LIMIT = 64 * 1024;

/** the token never reaches a log line: neither the header (not logged) nor the query parameter */
export const redactUrl = (url: string): string => url.replace(/([?&]token=)[^&#]*/gi, '$1[redacted]');

/** Builds the API as a plugin tree; never listens (server.ts does), so tests use inject(). */
export async function buildApp(d: AppDeps): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: d.log as FastifyBaseLogger,
    // our onResponse hook logs requests, with the token taken out of the URL
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: BODY_LIMIT,
    genReqId: () => crypto.randomUUID(),
    requestIdHeader: false,
    routerOptions: { ignoreTrailingSlash: true },
    // a JSON 4xx for what Node's parser refuses (a URL or headers over 16 kB), read by the client
    clientErrorHandler,
  });
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  app.setErrorHandler(errorHandler);
  app.setNotFoundHandler((req, reply) =>
    sendAfterDrain(req, reply, 404, { error: { code: 'NOT_FOUND', message: `no route ${req.method} ${redactUrl(req.url).split('?')[0]}` }, requestId: req.id }),
  );
  app.decorateRequest('caller', null);
  app.addHook('onRequest', async (req) => {
    // a token that grants nothing is refused here, on every route that needs one
    if (req.routeOptions.config.auth) req.caller = await d.auth.admit(req, req.routeOptions.config);
  });
  app.addHook('onResponse', async (req, reply) => {
    req.log.info({ method: req.method, url: redactUrl(req.url), statusCode: reply.statusCode, ms: Math.round(reply.elapsedTime) }, 'request');
  });
  await app.register(swagger, {
    openapi: {
      info: { title: 'swarm-utils', version: version(), description: 'Backup, clean and update of Docker Swarm services' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
    transform: jsonSchemaTransform,
  });
  await app.register(healthRoutes, { ready: d.ready });
  await app.register(jobRoutes, { jobs: d.jobs, waitLimitMs: d.waitLimitMs });
  await app.register(statusRoutes, { status: d.status, metrics: d.metrics });
  await app.register(servicesRoutes, { services: d.services });
  await app.register(backupsRoutes, { backups: d.backups });
  await app.register(overviewRoutes, { config: d.config, ...(d.listServices ? { listServices: d.listServices } : {}) });
  await app.register(consoleRoutes);
  // like every route but the health checks and the console's page, it needs a token that grants something (README, Authorization)
  app.get('/docs', { config: { auth: true }, schema: { hide: true } }, async () => app.swagger());
  return app;
}
