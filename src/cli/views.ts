/** Read-only verbs: backups, status, version, config check. */
import { loadConfig } from '../config.js';
import { buildInfo } from '../version.js';
import type { Ctx } from './context.js';
import { EXIT, type ExitCode } from './exit.js';
import { type Archive, type Job, backupsTable, jobsTable, table } from './format.js';
import type { Io } from './io.js';
import { printJson } from './jobs.js';

export async function listBackups(ctx: Ctx, q: string): Promise<ExitCode> {
  const r = await ctx.client.call('GET', `/backups${q}`);
  if (ctx.json) return (printJson(ctx, r), EXIT.ok);
  const { backups, next } = r.json as { backups: Archive[]; next: string | null };
  ctx.out.write(backups.length ? backupsTable(backups) : 'no archives\n');
  if (next !== null) ctx.out.write(`more: --before ${next}\n`);
  return EXIT.ok;
}

interface ServiceRow {
  name: string;
  image: string;
  replicas: { desired: number | null; running: number };
  actions: { type: string; refusal: { code: string } | null }[];
  volumes: { volume: string; node: string | null; lastBackup: { at: string } | null }[] | null;
}

/** every service this token may see, one line each */
export async function listServices(ctx: Ctx): Promise<ExitCode> {
  const r = await ctx.client.call('GET', '/services');
  if (ctx.json) return (printJson(ctx, r), EXIT.ok);
  const { services } = r.json as { services: ServiceRow[] };
  const lastBackup = (s: ServiceRow) =>
    s.volumes?.map((v) => v.lastBackup?.at).filter((x): x is string => !!x).sort().at(0)?.replace(/\.\d{3}Z$/, 'Z') ?? '';
  ctx.out.write(
    services.length
      ? table(
          ['SERVICE', 'REPLICAS', 'MAY RUN', 'OLDEST LAST BACKUP', 'IMAGE'],
          services.map((s) => [
            s.name,
            `${s.replicas.running}/${s.replicas.desired ?? 'global'}`,
            s.actions.filter((a) => a.refusal === null).map((a) => a.type).join(','),
            lastBackup(s),
            s.image,
          ]),
        )
      : 'no service this token may see\n',
  );
  return EXIT.ok;
}

interface Status {
  service: { name: string; image: string; mode: string; updatedAt: string };
  replicas: { desired: number | null; running: number };
  tasks: { id: string; node: string | null; state: string; desiredState: string; error: string | null; updatedAt: string }[];
  updateStatus: unknown;
  labels: Record<string, string>;
  jobs: Job[];
  logs: string[];
}

export async function serviceStatus(ctx: Ctx, service: string, logs: number | undefined): Promise<ExitCode> {
  const q = new URLSearchParams({ service, ...(logs !== undefined ? { logs: String(logs) } : {}) });
  const r = await ctx.client.call('GET', `/service/status?${q}`);
  if (ctx.json) return (printJson(ctx, r), EXIT.ok);
  const s = r.json as Status;
  const out: string[] = [
    `service  ${s.service.name} (${s.service.mode})`,
    `image    ${s.service.image}`,
    `replicas ${s.replicas.running} running of ${s.replicas.desired ?? 'global'}`,
  ];
  if (s.updateStatus) out.push(`update   ${JSON.stringify(s.updateStatus)}`);
  for (const [k, v] of Object.entries(s.labels)) out.push(`label    ${k}=${v}`);
  ctx.out.write(`${out.join('\n')}\n\n`);
  ctx.out.write(table(['TASK', 'NODE', 'STATE', 'DESIRED', 'ERROR'], s.tasks.map((t) => [t.id.slice(0, 12), t.node ?? '', t.state, t.desiredState, t.error ?? ''])));
  if (s.jobs.length) ctx.out.write(`\n${jobsTable(s.jobs)}`);
  if (s.logs.length) ctx.out.write(`\n${s.logs.join('\n')}\n`);
  return EXIT.ok;
}

/** the client's version, and the server's when it answers (GET /healthz needs no token) */
export async function versions(ctx: Ctx): Promise<ExitCode> {
  const client = buildInfo();
  let server: unknown = null;
  let problem: string | null = null;
  try {
    const r = await ctx.client.request('GET', '/healthz', { auth: false, timeoutMs: 5_000 });
    server = r.json;
    if (r.status !== 200) problem = `GET /healthz answered ${r.status}`;
  } catch (err) {
    problem = err instanceof Error ? err.message : String(err);
  }
  if (ctx.json) {
    ctx.out.write(`${JSON.stringify({ client, server })}\n`);
    return EXIT.ok;
  }
  ctx.out.write(`client ${client.version}${client.revision ? ` (${client.revision})` : ''}\n`);
  const v = (server as { version?: unknown } | null)?.version;
  if (problem) ctx.out.write(`server ${ctx.client.base.origin}: ${problem}\n`);
  else ctx.out.write(`server ${typeof v === 'string' ? v : 'unknown (it does not report its version)'} at ${ctx.client.base.origin}\n`);
  return EXIT.ok;
}

/** validates the environment the way start-up does (src/config.ts), without starting anything */
export function configCheck(io: Io, json: boolean): ExitCode {
  const result = loadConfig(io.env, { readFile: io.readFile });
  if (json) {
    const warnings = result.warnings ?? [];
    io.stdout.write(`${JSON.stringify(result.ok ? { ok: true, warnings } : { ok: false, problems: result.problems, warnings })}\n`);
    return result.ok ? EXIT.ok : EXIT.usage;
  }
  // an unknown SWARM_UTILS_* variable (a typo) is a warning at start-up: shown here, name only
  for (const w of result.warnings ?? []) io.stderr.write(`swarm-utils: warning: ${w}\n`);
  if (!result.ok) {
    io.stderr.write('swarm-utils: invalid configuration:\n');
    for (const p of result.problems) io.stderr.write(`  ${p}\n`);
    return EXIT.usage;
  }
  const c = result.config;
  const set = (v: unknown) => (v ? 'set' : 'not set');
  const lines = [
    'configuration is valid',
    `  listen        ${c.host}:${c.port}`,
    `  database      ${c.dbPath}`,
    `  admin tokens  ${c.adminTokens.length}`,
    `  S3            ${c.s3.domain ? `${c.s3.https ? 'https' : 'http'}://${c.s3.domain}/${c.s3.bucket}${c.s3.path ? `/${c.s3.path}` : ''} (region ${c.s3.region})` : 'not configured: backups, restores and drills are refused'}`,
    `  state copy    ${c.s3.domain && c.stateCopy.enabled ? `on, every ${c.stateCopy.intervalMs} ms` : 'off'}`,
    `  registry      ${c.registry.url ?? 'not configured'}`,
    `  cron          ${c.cronExpr} (${c.cronTz}): clean ${c.isCronClean}, backup ${c.isCronBackup}, drill ${c.isCronDrill}`,
    `  limits        lock wait ${c.lockTimeoutMs} ms, one command ${c.lockMaxExecutionMs} ms, one job ${c.lockMaxOccupationMs} ms, ${c.concurrency} jobs at once`,
    `  notify        ${set(c.notify.url)}${c.notify.url ? ` (on ${c.notify.on})` : ''}`,
  ];
  io.stdout.write(`${lines.join('\n')}\n`);
  return EXIT.ok;
}

interface Overview {
  schedules: {
    common: { expr: string; tz: string; clean: boolean; backup: boolean; drill: boolean; next: string | null };
    services: { service: string; kind: string; expr: string; active: boolean; reason: string | null; next: string | null }[] | null;
  };
  offenLabels: { service: string; on: string; label: string; value?: string; use: string | null; note: string; migrated: boolean }[] | null;
  swarmError?: string;
}

const at = (iso: string | null): string => iso?.replace(/\.\d{3}Z$/, 'Z') ?? '';

/** the common cron run and every service's own schedule with its next run (GET /status, admin token) */
export async function schedules(ctx: Ctx): Promise<ExitCode> {
  const r = await ctx.client.call('GET', '/status');
  if (ctx.json) return (ctx.out.write(`${JSON.stringify((r.json as Overview).schedules)}\n`), EXIT.ok);
  const { schedules: s, swarmError } = r.json as Overview;
  const c = s.common;
  const does = ['clean', 'backup', 'drill'].filter((k) => c[k as 'clean' | 'backup' | 'drill']);
  const rows = [['(common run)', does.join(',') || 'off', c.expr, c.next ? at(c.next) : '-', '']];
  for (const x of s.services ?? []) rows.push([x.service, x.kind, x.expr, x.active ? at(x.next) : '-', x.reason ?? '']);
  ctx.out.write(table(['SERVICE', 'RUNS', 'EXPRESSION', `NEXT (${c.tz})`, 'NOT IN EFFECT BECAUSE'], rows));
  if (swarmError) ctx.err.write(`swarm-utils: ${swarmError}\n`);
  return EXIT.ok;
}

/** the offen labels on the swarm and the swarm-utils label to use (GET /status); exit 1 while one is left to migrate */
export async function migrateFromOffen(ctx: Ctx): Promise<ExitCode> {
  const r = await ctx.client.call('GET', '/status');
  const { offenLabels, swarmError } = r.json as Overview;
  if (offenLabels === null) {
    ctx.err.write(`swarm-utils: ${swarmError ?? 'the server could not list the services'}\n`);
    return EXIT.failed;
  }
  const left = offenLabels.filter((l) => l.use !== null && !l.migrated);
  if (ctx.json) ctx.out.write(`${JSON.stringify(offenLabels)}\n`);
  else if (!offenLabels.length) ctx.out.write('no offen label on any service or its containers\n');
  else {
    ctx.out.write(
      table(
        ['SERVICE', 'ON', 'OFFEN LABEL', 'USE INSTEAD', 'DONE', 'NOTE'],
        offenLabels.map((l) => [l.service, l.on, l.value === undefined ? l.label : `${l.label}=${l.value}`, l.use ?? '-', l.use === null ? '-' : l.migrated ? 'yes' : 'no', l.note]),
      ),
    );
    ctx.out.write(left.length ? `${left.length} offen label(s) still to migrate (docs/migrating-from-offen.md)\n` : 'every offen label is migrated or has no equivalent\n');
  }
  return left.length ? EXIT.failed : EXIT.ok;
}
