import type { FastifyPluginAsync, FastifyReply } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { AppError } from '../../errors.js';
import type { JobType } from '../../db/jobs.js';
import type { JobsService } from '../jobs-service.js';
import type { JobView } from '../present.js';
import { JobIdParams, ListQuery, SubmitBody, SubmitQuery, TokenQuery } from '../schemas.js';

const FINAL = new Set(['succeeded', 'failed', 'canceled']);
/** seconds a client is told to wait before it asks again after a 503 at shutdown */
export const RETRY_AFTER_S = 30;

/** waitRes answers: so `curl -f` fails exactly when the job did */
export function waitStatus(job: JobView): number {
  if (!FINAL.has(job.state)) return 504;
  if (job.state === 'succeeded') return 200;
  return job.error?.code === 'LOCK_TIMEOUT' ? 409 : 502;
}

export const jobRoutes: FastifyPluginAsync<{ jobs: JobsService; waitLimitMs: number }> = async (base, { jobs, waitLimitMs }) => {
  const app = base.withTypeProvider<ZodTypeProvider>();
  const auth = { auth: true };

  async function answer(reply: FastifyReply, job: JobView, waitRes: boolean | undefined) {
    reply.header('Location', `/jobs/${job.id}`);
    if (!waitRes) return reply.code(202).send(job);
    const done = await jobs.wait(job.id, waitLimitMs);
    // the process stops: the job goes on in the next one; answer at once with the job as it stands
    // (Connection: close, so the closing server does not wait for this connection's keep-alive)
    if (!FINAL.has(done.state) && jobs.stopping()) {
      return reply.code(503).header('Retry-After', String(RETRY_AFTER_S)).header('Connection', 'close').send(done);
    }
    return reply.code(waitStatus(done)).send(done);
  }

  app.post('/jobs', { config: auth, schema: { body: SubmitBody, querystring: TokenQuery, description: 'submit a job' } }, async (req, reply) => {
    const job = await jobs.submit(req.caller!, req.body);
    return answer(reply, job, req.body.waitRes);
  });

  for (const type of ['clean', 'backup', 'update', 'restore', 'drill', 'migrate'] as const satisfies readonly JobType[]) {
    app.post(
      `/${type}`,
      { config: auth, schema: { querystring: SubmitQuery, description: `submit a ${type} job (query form of the original design)` } },
      async (req, reply) => {
        const { token: _token, waitRes, ...rest } = req.query;
        const parsed = SubmitBody.safeParse({ type, ...rest });
        if (!parsed.success) {
          const details = parsed.error.issues.map((i) => ({ field: i.path.join('.'), message: i.message, in: 'querystring' }));
          throw new AppError('VALIDATION', `invalid querystring: ${details.map((d) => `${d.field}: ${d.message}`).join('; ')}`, details);
        }
        const job = await jobs.submit(req.caller!, parsed.data);
        return answer(reply, job, waitRes);
      },
    );
  }

  app.get('/jobs/:id', { config: auth, schema: { params: JobIdParams, querystring: TokenQuery, description: 'a job with its steps' } }, async (req) =>
    jobs.get(req.caller!, req.params.id),
  );

  app.get('/jobs', { config: auth, schema: { querystring: ListQuery, description: 'jobs, newest first' } }, async (req) =>
    jobs.list(req.caller!, req.query),
  );

  app.post(
    '/jobs/:id/cancel',
    { config: auth, schema: { params: JobIdParams, querystring: TokenQuery, description: 'cancel a queued or running job' } },
    async (req) => jobs.cancel(req.caller!, req.params.id),
  );
};
