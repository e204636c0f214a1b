import type { FastifyRequest } from 'fastify';
import { AppError } from '../errors.js';
import type { JobRow, JobType } from '../db/jobs.js';
import { L } from '../jobs/labels.js';
import { grants, sha256, tokenMatches } from '../jobs/tokens.js';
import type { NodeInfo, ServiceInfo } from '../swarm/port.js';

export interface Caller {
  admin: boolean;
  /** sha-256 hex of the token: compared and stored instead of the token */
  hash: string;
  /** first 12 hex characters, recorded as "who asked" */
  short: string;
}

/** the token of a request: `Authorization: Bearer <t>` or the `token` query parameter (the original design) */
export function tokenOf(req: FastifyRequest): string | null {
  const h = req.headers.authorization;
  if (typeof h === 'string') {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(h);
    if (m) return m[1]!;
  }
  const q = (req.query as Record<string, unknown> | undefined)?.token;
  return typeof q === 'string' && q.length > 0 ? q : null;
}

export interface Authorizer {
  authenticate(req: FastifyRequest): Caller;
  canService(caller: Caller, action: JobType, svc: ServiceInfo): boolean;
  canNode(caller: Caller, node: NodeInfo): boolean;
}

export function createAuthorizer(adminTokens: string[]): Authorizer {
  return {
    authenticate(req) {
      const token = tokenOf(req);
      if (!token) throw new AppError('UNAUTHORIZED', 'a token is required: Authorization: Bearer <token> or ?token=');
      const digest = sha256(token);
      const hash = digest.toString('hex');
      return { admin: tokenMatches(digest, adminTokens), hash, short: hash.slice(0, 12) };
    },
    canService: (caller, action, svc) => caller.admin || grants(svc.labels[`swarm-utils.${action}.token`], caller.hash),
    canNode: (caller, node) => caller.admin || grants(node.labels[L.nodeTokenList], caller.hash),
  };
}

/** may the caller see this job? admins all; others what they may act on, and the `all` jobs they asked for */
export function canSeeJob(
  auth: Authorizer,
  caller: Caller,
  job: JobRow,
  lookup: { service(name: string): ServiceInfo | null; node(name: string): NodeInfo | null },
): boolean {
  if (caller.admin) return true;
  if (job.targetKind === 'all') return job.requesterHash === caller.hash;
  if (job.targetKind === 'service') {
    const svc = lookup.service(job.target!);
    return !!svc && auth.canService(caller, job.type, svc);
  }
  const node = lookup.node(job.target!);
  return !!node && auth.canNode(caller, node);
}
