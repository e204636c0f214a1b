import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { ServicesAnswer, type ServicesService } from '../services-service.js';
import { TokenQuery } from '../schemas.js';

export const servicesRoutes: FastifyPluginAsync<{ services: ServicesService }> = async (base, { services }) => {
  const app = base.withTypeProvider<ZodTypeProvider>();
  app.get(
    '/services',
    {
      config: { auth: true },
      schema: {
        querystring: TokenQuery,
        response: { 200: ServicesAnswer },
        description:
          'the services this token may see (swarm-utils labels redacted, replicas, the job types it may start on each and why one would be refused, ' +
          'last successful backup per volume and node), the nodes it may clean and the all=true jobs it may start; 403 for a token that grants nothing',
      },
    },
    async (req) => services.list(req.caller!),
  );
};
