import type { FastifyPluginAsync } from 'fastify';
import type { Config } from '../../config.js';
import { AppError } from '../../errors.js';
import { offenLabelsOf } from '../../offen-labels.js';
import { scheduleReport } from '../../schedules.js';
import type { ServiceInfo } from '../../swarm/port.js';
import { buildInfo } from '../../version.js';
import { configSummary } from '../config-summary.js';

/**
 * GET /status: swarm-utils itself, its version and the configuration in effect, the schedules with their
 * next runs (the common run and each service's own) and the offen labels found on the swarm with what to
 * use instead (admin only; nothing secret). When Docker cannot be asked, `schedules.services` and
 * `offenLabels` are null and `swarmError` says why.
 */
export const overviewRoutes: FastifyPluginAsync<{ config: Config; listServices?: () => Promise<ServiceInfo[]> }> = async (app, { config, listServices }) => {
  const summary = configSummary(config);
  app.get('/status', { config: { auth: true }, schema: { description: 'the running version, configuration, schedules and offen labels (admin token; no secret)' } }, async (req) => {
    if (!req.caller!.admin) throw new AppError('FORBIDDEN', 'the status of swarm-utils itself needs an admin token');
    let services: ServiceInfo[] | null = null;
    let swarmError: string | null = null;
    try {
      services = listServices ? await listServices() : null;
    } catch (e) {
      swarmError = `the services could not be listed: ${(e as Error).message}`;
    }
    const schedules = scheduleReport(services ?? [], config);
    return {
      ...buildInfo(),
      config: summary,
      schedules: { common: schedules.common, services: services ? schedules.services : null },
      offenLabels: services ? offenLabelsOf(services) : null,
      ...(swarmError ? { swarmError } : {}),
    };
  });
};
