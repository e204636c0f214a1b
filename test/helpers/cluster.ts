import Dockerode from 'dockerode';
import { REGISTRY_AUTH, IMAGES, dockerFor } from './testbed.js';

/** the manager's daemon: tests set up and observe with Docker directly */
export const manager = new Dockerode();

export const uid = (): string => Math.random().toString(36).slice(2, 8);

export interface AppServiceOpts {
  image?: string;
  replicas?: number;
  labels?: Record<string, string>;
  /** spread one task per worker */
  onWorkers?: boolean;
  constraints?: string[];
  mounts?: { Type: 'volume' | 'bind'; Source: string; Target: string }[];
  global?: boolean;
  env?: string[];
}

export async function createAppService(name: string, o: AppServiceOpts = {}): Promise<string> {
  const spec = {
    Name: name,
    Labels: o.labels ?? {},
    TaskTemplate: {
      ContainerSpec: { Image: o.image ?? IMAGES.appV1, Mounts: o.mounts ?? [], Env: o.env ?? [], StopGracePeriod: 2_000_000_000 },
      Placement: {
        Constraints: o.constraints ?? (o.onWorkers ? ['node.role==worker'] : []),
        ...(o.onWorkers ? { MaxReplicas: 1 } : {}),
      },
      RestartPolicy: { Condition: 'any', Delay: 1_000_000_000 },
    },
    Mode: o.global ? { Global: {} } : { Replicated: { Replicas: o.replicas ?? 1 } },
    UpdateConfig: { Parallelism: 1, FailureAction: 'pause', Monitor: 2_000_000_000, Order: 'stop-first' },
  };
  const svc = await manager.createService(REGISTRY_AUTH as any, spec as any);
  const id = (svc as unknown as { id: string }).id;
  await waitRunning(name, o.global ? undefined : (o.replicas ?? 1));
  return id;
}

export async function removeServices(...names: string[]): Promise<void> {
  for (const n of names) await manager.getService(n).remove().catch(() => undefined);
}

export async function inspect(name: string): Promise<any> {
  return manager.getService(name).inspect();
}

export async function runningTasks(name: string): Promise<any[]> {
  const tasks = await manager.listTasks({ filters: { service: [name], 'desired-state': ['running'] } });
  const id = (await inspect(name)).ID;
  return tasks.filter((t: any) => t.ServiceID === id && t.Status?.State === 'running');
}

export async function waitRunning(name: string, replicas?: number, ms = 90_000): Promise<any[]> {
  const end = Date.now() + ms;
  for (;;) {
    const tasks = await runningTasks(name);
    const want = replicas ?? (await manager.listNodes()).filter((n: any) => n.Status.State === 'ready' && n.Spec.Availability === 'active').length;
    if (tasks.length === want) return tasks;
    if (Date.now() > end) throw new Error(`${name}: ${tasks.length} of ${want} tasks running after ${ms} ms`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

const hostnames = new Map<string, string>();
export async function hostnameOf(nodeId: string): Promise<string> {
  if (!hostnames.size) for (const n of await manager.listNodes()) hostnames.set(n.ID, n.Description.Hostname);
  return hostnames.get(nodeId) ?? 'manager';
}

/** the daemon of the node a task runs on */
export async function daemonOfTask(task: any): Promise<Dockerode> {
  const info = await manager.info();
  if (task.NodeID === info.Swarm.NodeID) return manager;
  return dockerFor((await hostnameOf(task.NodeID)) as any);
}

/** exec in a task's container on whichever node it runs, returns stdout */
export async function execInTask(task: any, cmd: string[]): Promise<string> {
  const d = await daemonOfTask(task);
  const exec = await d.getContainer(task.Status.ContainerStatus.ContainerID).exec({ Cmd: cmd, AttachStdout: true, AttachStderr: true });
  const stream = await exec.start({ hijack: true, stdin: false });
  const chunks: Buffer[] = [];
  await new Promise<void>((resolve, reject) => {
    d.modem.demuxStream(stream, { write: (c: Buffer) => chunks.push(c) } as any, { write: (c: Buffer) => chunks.push(c) } as any);
    stream.on('end', resolve);
    stream.on('error', reject);
  });
  return Buffer.concat(chunks).toString();
}

/** the env for a server that works against the test swarm */
export function serverEnv(extra: Record<string, string> = {}): Record<string, string> {
  return {
    SWARM_UTILS_DOCKER_CLI_IMAGE_NAME: IMAGES.dockerCli,
    SWARM_UTILS_BACKUP_IMAGE: IMAGES.backup,
    SWARM_UTILS_REGISTRY_URL: `https://${REGISTRY_AUTH.serveraddress}`,
    SWARM_UTILS_REGISTRY_USER: REGISTRY_AUTH.username,
    SWARM_UTILS_REGISTRY_PASSWORD: REGISTRY_AUTH.password,
    ...extra,
  };
}
