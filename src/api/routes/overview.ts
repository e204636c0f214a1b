import type { FastifyPluginAsync } from 'fastify';
import type { Config } from '../../config.js';
import { AppError } from '../../errors.js';
import { buildInfo } from '../../version.js';
import { configSummary } from '../config-summary.js';

/** GET /status: swarm-utils itself, its version and the configuration in effect (admin only; nothing secret) */
export const overviewRoutes: FastifyPluginAsync<{ config: Config }> = async (app, { config }) => {
  const summary = configSummary(config);
  app.get('/status', { config: { auth: true }, schema: { description: 'the running version and configuration (admin token; no secret)' } }, async (req) => {
    if (!req.caller!.admin) throw new AppError('FORBIDDEN', 'the status of swarm-utils itself needs an admin token');
    return { ...buildInfo(), config: summary };
  });
};
