// Deploying swarm-utils itself as a stack on the test swarm, as the README's "Deployment" says:
// the image stand-in built from this checkout, external secrets, the manager labelled
// swarm-utils.data=true, `docker stack deploy --with-registry-auth -c swarm-stack.yml -c deploy/…`.
// Used by test/cluster/stack.test.ts, manager-loss.test.ts and helper-networks.test.ts.
import { fileURLToPath } from 'node:url';
import { REGISTRY, SWARM_SCRIPTS_DIR, run, type RunResult } from './testbed.js';
import { manager } from './cluster.js';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const SWARM_UTILS_IMAGE = `${REGISTRY}/test/swarm-utils:test`;
const DATA_LABEL = 'swarm-utils.data';
const OWN_LABEL_MARK = 'swarm-utils.test.data-label';

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const message = (e: unknown) => (e instanceof Error ? e.message : String(e));

/** the docker CLI against the manager, without any SWARM_UTILS_* of the caller's shell (stack files read them) */
export async function dockerCli(args: string[], opts: { env?: Record<string, string>; timeoutMs?: number; mayFail?: boolean } = {}): Promise<RunResult> {
  const env: NodeJS.ProcessEnv = { ...process.env, DOCKER_CLI_HINTS: 'false' };
  for (const k of Object.keys(env)) if (k.startsWith('SWARM_UTILS_') || k === 'DOCKER_HOST' || k === 'DOCKER_CONTEXT') delete env[k];
  const res = await run('docker', args, { cwd: ROOT, env: { ...env, ...opts.env }, timeoutMs: opts.timeoutMs ?? 60_000 });
  if (res.code !== 0 && !opts.mayFail) throw new Error(`docker ${args.join(' ')} failed (exit ${res.code}):\n${res.stderr}${res.stdout}`);
  return res;
}

/** polls `probe` until it returns a value (not null/undefined/false) or the deadline passes */
export async function until<T>(what: string, ms: number, probe: () => Promise<T | null | undefined | false>, diagnose?: () => Promise<string>): Promise<T> {
  const end = Date.now() + ms;
  let lastError: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== null && v !== undefined && v !== false) return v;
    } catch (e) {
      lastError = e;
    }
    if (Date.now() > end) {
      const last = lastError === undefined ? '' : ` (last error: ${message(lastError)})`;
      throw new Error(`${what}: not reached within ${ms / 1000} s${last}${diagnose ? `\n${await diagnose()}` : ''}`);
    }
    await sleep(300);
  }
}

/** test/swarm/images/swarm-utils/build.sh: the image of this checkout, `repo@sha256:…` */
export async function buildSwarmUtilsImage(): Promise<string> {
  const script = `${SWARM_SCRIPTS_DIR}images/swarm-utils/build.sh`;
  const build = await run('bash', [script, SWARM_UTILS_IMAGE], { timeoutMs: 240_000 });
  if (build.code !== 0) throw new Error(`${script} failed (exit ${build.code}):\n${build.stderr}${build.stdout}`);
  return build.stdout.trim().split('\n').pop() ?? '';
}

/** test/swarm/images/s3rver/build.sh: the test S3 server as an image */
export async function buildS3rverImage(): Promise<string> {
  const script = `${SWARM_SCRIPTS_DIR}images/s3rver/build.sh`;
  const build = await run('bash', [script], { timeoutMs: 240_000 });
  if (build.code !== 0) throw new Error(`${script} failed (exit ${build.code}):\n${build.stderr}${build.stdout}`);
  return build.stdout.trim().split('\n').pop() ?? '';
}

/**
 * Sets the manager's swarm-utils.data label for the test (with a marker that the test set it);
 * returns the undo, which leaves alone a label that was there before.
 */
export async function labelManagerForData(): Promise<() => Promise<void>> {
  const managerId = (await manager.info()).Swarm.NodeID as string;
  const set = async (on: boolean) => {
    const node = manager.getNode(managerId);
    const info = await node.inspect();
    const labels = { ...info.Spec.Labels };
    if (on) Object.assign(labels, { [DATA_LABEL]: 'true', [OWN_LABEL_MARK]: 'true' });
    else for (const k of [DATA_LABEL, OWN_LABEL_MARK]) delete labels[k];
    await node.update({ version: info.Version.Index, ...info.Spec, Labels: labels });
  };
  const labels = (await manager.getNode(managerId).inspect()).Spec.Labels ?? {};
  const ours = labels[DATA_LABEL] !== 'true' || labels[OWN_LABEL_MARK] === 'true';
  if (ours) await set(true);
  return async () => {
    if (ours) await set(false);
  };
}

/** secrets labelled as this test's, so a later run may remove what an interrupted one left (never someone else's) */
export async function createOwnSecrets(secrets: Record<string, string>, own: { key: string; value: string }): Promise<string[]> {
  const created: string[] = [];
  for (const [name, value] of Object.entries(secrets)) {
    const existing: any = await manager.getSecret(name).inspect().catch(() => null);
    if (existing) {
      if (existing.Spec?.Labels?.[own.key] !== own.value) {
        throw new Error(`a Docker secret "${name}" exists that this test did not create (no label ${own.key}=${own.value}): remove it or run the test on another swarm`);
      }
      await removeSecret(name);
    }
    await manager.createSecret({ Name: name, Labels: { [own.key]: own.value }, Data: Buffer.from(value).toString('base64') });
    created.push(name);
  }
  return created;
}

export async function removeSecret(name: string): Promise<void> {
  await until(`secret ${name} to be removed`, 30_000, async () => {
    try {
      await manager.getSecret(name).remove();
      return true;
    } catch (e: any) {
      if (e?.statusCode === 404) return true;
      throw e; // in use while the service is going away
    }
  });
}

/** docker stack rm, then wait until its services, containers and networks are gone, and remove its volumes */
export async function removeStack(stack: string, volumes: string[]): Promise<void> {
  const ns = `com.docker.stack.namespace=${stack}`;
  await dockerCli(['stack', 'rm', stack], { mayFail: true });
  await until(`the services, containers and network of stack ${stack} to be gone`, 60_000, async () => {
    const [services, containers, networks] = await Promise.all([
      manager.listServices({ filters: { label: [ns] } }),
      manager.listContainers({ all: true, filters: { label: [ns] } }),
      manager.listNetworks({ filters: { label: [ns] } }),
    ]);
    if (!services.length) for (const c of containers) await manager.getContainer(c.Id).remove({ force: true }).catch(() => undefined);
    return services.length + containers.length + networks.length === 0;
  });
  for (const v of volumes) {
    await until(`volume ${v} to be removed`, 30_000, async () => {
      try {
        await manager.getVolume(v).remove();
        return true;
      } catch (e: any) {
        if (e?.statusCode === 404) return true;
        throw e;
      }
    });
  }
}

/** the stack service's one task that should run (it has a container once it is starting) */
export async function currentTask(service: string): Promise<any | undefined> {
  const tasks = await manager.listTasks({ filters: { service: [service], 'desired-state': ['running'] } });
  return tasks.find((t: any) => t.Status?.ContainerStatus?.ContainerID);
}

/** what a failed wait prints: the service's tasks and the end of its log */
export async function diagnostics(service: string): Promise<string> {
  const ps = await dockerCli(['service', 'ps', '--no-trunc', '--format', '{{.Name}} {{.Node}} desired={{.DesiredState}} {{.CurrentState}} {{.Error}}', service], { mayFail: true });
  const logs = await dockerCli(['service', 'logs', '--raw', '--no-trunc', '--tail', '30', service], { mayFail: true });
  return `docker service ps ${service}:\n${ps.stdout}${ps.stderr}\nits log (last 30 lines):\n${logs.stdout}${logs.stderr}`;
}
