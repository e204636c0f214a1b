import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { BackupsAnswer, BackupsQuery, type BackupsService } from '../backups-service.js';

export const backupsRoutes: FastifyPluginAsync<{ backups: BackupsService }> = async (base, { backups }) => {
  const app = base.withTypeProvider<ZodTypeProvider>();
  app.get(
    '/backups',
    {
      config: { auth: true },
      schema: {
        querystring: BackupsQuery,
        response: { 200: BackupsAnswer },
        description:
          'the archives in the bucket under SWARM_UTILS_S3_PATH, newest first, parsed from their names (other objects are ignored), ' +
          'with the file count and bytes recorded when staged and the last drill; service= filters to its selected volumes, ' +
          'before=<next> pages. A label token sees the volumes of the services it may back up or restore.',
      },
    },
    async (req) => backups.list(req.caller!, req.query),
  );
};
