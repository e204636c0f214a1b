import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { AppError } from '../../errors.js';
import type { Metrics } from '../metrics.js';
import type { StatusService } from '../status-service.js';
import { StatusQuery, TokenQuery } from '../schemas.js';

export const statusRoutes: FastifyPluginAsync<{ status: StatusService; metrics: Metrics }> = async (base, { status, metrics }) => {
  const app = base.withTypeProvider<ZodTypeProvider>();
  app.get(
    '/service/status',
    { config: { auth: true }, schema: { querystring: StatusQuery, description: 'spec summary, replicas, tasks, update status, labels (redacted), recent jobs, logs' } },
    async (req) => status.status(req.caller!, req.query.service, req.query.logs),
  );
  app.get('/metrics', { config: { auth: true, metrics: true }, schema: { querystring: TokenQuery, description: 'Prometheus text (admin or metrics token)' } }, async (req, reply) => {
    if (!req.caller!.admin && !req.caller!.metrics) throw new AppError('FORBIDDEN', 'metrics need an admin or a metrics token');
    const { contentType, body } = await metrics.render();
    return reply.type(contentType).send(body);
  });
};
