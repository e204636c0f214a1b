import type { FastifyRequest } from 'fastify';
import type { Config } from '../config.js';
import { AppError } from '../errors.js';
import { JOB_TYPES, type JobRow, type JobType, type Visibility } from '../db/jobs.js';
import { requesterKey } from '../db/meta.js';
import type { Deps } from '../engine/types.js';
import { L } from '../jobs/labels.js';
import { grants, requesterHash, sha256, tokenMatches } from '../jobs/tokens.js';
import type { NodeInfo, ServiceInfo } from '../swarm/port.js';

export interface Caller {
  admin: boolean;
  /** a SWARM_UTILS_METRICS_TOKEN_LIST token: reads /metrics */
  metrics: boolean;
  /** keyed hash of the token (README, Authorization): compared and stored instead of the token */
  hash: string;
  /** first 12 hex characters of `hash`, shown as "who asked" */
  short: string;
}

/** what a non-admin token may act on, from one listing of services and one of nodes */
export interface Scope {
  /** service name → the job types its labels grant */
  services: Map<string, JobType[]>;
  /** the nodes whose `swarm-utils.clean.token-list` names the token */
  nodes: NodeInfo[];
}

/**
 * the token of a request: `Authorization: Bearer <t>`, or the `token` query parameter (the original design)
 * unless SWARM_UTILS_QUERY_TOKEN=false, which refuses it (401) so that no token ends up in a proxy's access log
 */
export function tokenOf(req: FastifyRequest, queryToken = true): string | null {
  const h = req.headers.authorization;
  if (typeof h === 'string') {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(h);
    if (m) return m[1]!;
  }
  const q = (req.query as Record<string, unknown> | undefined)?.token;
  if (typeof q !== 'string' || q.length === 0) return null;
  if (!queryToken) throw new AppError('UNAUTHORIZED', 'the ?token= query parameter is switched off here (SWARM_UTILS_QUERY_TOKEN=false): send Authorization: Bearer <token>');
  return q;
}

export interface Authorizer {
  /** the caller of a request (401 without a token) */
  authenticate(req: FastifyRequest): Caller;
  /**
   * authenticate, then refuse (403) a token that grants nothing: neither admin nor named by any label
   * (the metrics route also admits metrics tokens). Costs one services and one nodes listing for a
   * label token, remembered for the rest of the request.
   */
  admit(req: FastifyRequest, route: { metrics?: boolean }): Promise<Caller>;
  /** what a non-admin caller may act on (computed once per caller) */
  scope(caller: Caller): Promise<Scope>;
  canService(caller: Caller, action: JobType, svc: ServiceInfo): boolean;
  canNode(caller: Caller, node: NodeInfo): boolean;
  /** may the caller read the archives of this service's volumes (GET /backups): it may back it up or restore it */
  canArchives(caller: Caller, svc: ServiceInfo): boolean;
}

export function createAuthorizer(deps: Pick<Deps, 'db' | 'docker'> & { config: Pick<Config, 'adminTokens' | 'metricsTokens' | 'queryToken'> }): Authorizer {
  const key = requesterKey(deps.db);
  const scopes = new WeakMap<Caller, Promise<Scope>>();
  const canService = (caller: Caller, action: JobType, svc: ServiceInfo) => {
    if (caller.admin) return true;
    const label = tokenLabelOf(action);
    return label !== null && grants(svc.labels[label], caller.hash, key);
  };
  const canNode = (caller: Caller, node: NodeInfo) => caller.admin || grants(node.labels[L.nodeTokenList], caller.hash, key);

  async function computeScope(caller: Caller): Promise<Scope> {
    const [services, nodes] = await Promise.all([deps.docker.listServices(), deps.docker.listNodes()]);
    const granted = new Map<string, JobType[]>();
    for (const svc of services) {
      const types = JOB_TYPES.filter((t) => canService(caller, t, svc));
      if (types.length) granted.set(svc.name, types);
    }
    return { services: granted, nodes: nodes.filter((n) => canNode(caller, n)) };
  }

  const authorizer: Authorizer = {
    authenticate(req) {
      const query = deps.config.queryToken;
      const token = tokenOf(req, query);
      if (!token) throw new AppError('UNAUTHORIZED', `a token is required: Authorization: Bearer <token>${query ? ' or ?token=' : ''}`);
      const digest = sha256(token);
      const hash = requesterHash(key, token);
      return {
        admin: tokenMatches(digest, deps.config.adminTokens),
        metrics: tokenMatches(digest, deps.config.metricsTokens),
        hash,
        short: hash.slice(0, 12),
      };
    },
    async admit(req, route) {
      const caller = authorizer.authenticate(req);
      if (caller.admin || (route.metrics && caller.metrics)) return caller;
      const scope = await authorizer.scope(caller);
      if (!scope.services.size && !scope.nodes.length) throw new AppError('FORBIDDEN', 'this token grants nothing here');
      return caller;
    },
    scope(caller) {
      let s = scopes.get(caller);
      if (!s) {
        s = computeScope(caller);
        scopes.set(caller, s);
      }
      return s;
    },
    canService,
    canNode,
    canArchives: (caller, svc) => caller.admin || grants(svc.labels[L.backupToken], caller.hash, key) || grants(svc.labels[L.restoreToken], caller.hash, key),
  };
  return authorizer;
}

/**
 * The service label whose tokens grant an action: `swarm-utils.<action>.token`, except drills, which the
 * restore token grants (a backup token does not restore), and migrate, which no label grants (admin only).
 */
export function tokenLabelOf(action: JobType): string | null {
  if (action === 'migrate') return null;
  return `swarm-utils.${action === 'drill' ? 'restore' : action}.token`;
}

/** may the caller see this job? admins all; others what their scope covers, and the `all` jobs they asked for */
export function canSeeJob(caller: Caller, job: JobRow, scope: Scope | null): boolean {
  if (caller.admin) return true;
  if (!scope) return false;
  if (job.targetKind === 'all') return job.requesterHash === caller.hash;
  if (job.targetKind === 'service') return scope.services.get(job.target!)?.includes(job.type) ?? false;
  return scope.nodes.some((n) => n.id === job.target || (job.targetLabel === job.target && n.hostname === job.target));
}

/** the SQL filter of the same rule, for listings */
export function visibilityOf(caller: Caller, scope: Scope): Visibility {
  return {
    services: [...scope.services].flatMap(([name, types]) => types.map((t) => `${t}/${name}`)),
    // hostnames too: rows written before node ids hold one
    nodes: [...new Set(scope.nodes.flatMap((n) => [n.id, n.hostname]))],
    requesterHash: caller.hash,
  };
}
