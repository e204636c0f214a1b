import type { FastifyPluginAsync } from 'fastify';
import { version } from '../../version.js';

export type ReadinessCheck = () => Promise<{ ok: boolean; checks: Record<string, { ok: boolean; message?: string }> }>;

export const healthRoutes: FastifyPluginAsync<{ ready: ReadinessCheck }> = async (app, { ready }) => {
  app.get('/healthz', { schema: { description: 'liveness and the running version, no auth' } }, async () => ({ status: 'ok', version: version() }));
  app.get('/readyz', { schema: { description: 'database writable and Docker manager reachable' } }, async (_req, reply) => {
    const r = await ready();
    return reply.code(r.ok ? 200 : 503).send({ status: r.ok ? 'ready' : 'not ready', checks: r.checks });
  });
};
