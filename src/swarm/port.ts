/**
 * The Docker port: everything swarm-utils asks of Docker goes through this interface.
 * The engine and the job types never import dockerode; tests of the engine pass a fake.
 * One implementation (`dockerode.ts`) talks to the manager's Engine API.
 */

export interface RegistryAuth {
  username: string;
  password: string;
  /** registry host[:port] (no scheme) */
  serveraddress: string;
}

export interface ServiceInfo {
  id: string;
  name: string;
  /** spec version, needed for updates */
  version: number;
  labels: Record<string, string>;
  mode: 'replicated' | 'global' | 'replicated-job' | 'global-job';
  /** desired replicas of a replicated service, null otherwise */
  replicas: number | null;
  /** TaskTemplate.ContainerSpec.Image as stored in the spec (may carry @sha256:…) */
  image: string;
  /** the image of PreviousSpec (what `docker service rollback` returns to), null when there is none */
  previousImage?: string | null;
  /** TaskTemplate.ForceUpdate counter */
  forceUpdate: number;
  updateStatus: { state: string; message: string | null; startedAt: string | null; completedAt: string | null } | null;
  createdAt: string;
  updatedAt: string;
  /** the raw spec as Docker returned it (used to build an update) */
  spec: Record<string, unknown>;
}

export interface TaskInfo {
  id: string;
  serviceId: string;
  nodeId: string | null;
  /** Status.State: new, pending, assigned, accepted, preparing, starting, running, complete, failed, rejected, shutdown, orphaned, remove */
  state: string;
  desiredState: string;
  containerId: string | null;
  /** Status.Err */
  error: string | null;
  message: string | null;
  exitCode: number | null;
  /** Spec.ContainerSpec.Image of the task */
  image: string;
  /** Service spec version the task was created from */
  serviceVersion: number | null;
  createdAt: string;
  updatedAt: string;
}

export interface NodeInfo {
  id: string;
  hostname: string;
  role: 'manager' | 'worker';
  availability: 'active' | 'pause' | 'drain';
  /** Status.State: unknown, down, ready, disconnected */
  state: string;
  labels: Record<string, string>;
  addr: string | null;
}

export interface Mount {
  type: 'bind' | 'volume';
  source: string;
  target: string;
  readOnly: boolean;
  /** a volume mount's labels, given to the volume when the mount creates it on the node (staging volumes are found by them) */
  labels?: Record<string, string>;
}

export interface HelperSpec {
  /** deterministic name, so a re-entered step finds the helper it created before a crash */
  name: string;
  /** job id, stored in the label `swarm-utils.helper` */
  jobId: number;
  nodeId: string;
  image: string;
  /** ContainerSpec.Command (replaces the image's entrypoint) */
  command?: string[];
  /** ContainerSpec.Args */
  args?: string[];
  env: Record<string, string>;
  mounts: Mount[];
  auth?: RegistryAuth;
  /** overlay networks (names or ids) the helper's task joins, e.g. to reach an S3 service by its name */
  networks?: string[];
  /** Docker secrets mounted as files (ContainerSpec.Secrets): how credentials reach a helper, never as env */
  secrets?: SecretMount[];
  /** time between SIGTERM and SIGKILL when the helper is stopped (default 2 s): a restore's swap ignores TERM and needs to finish */
  stopGracePeriodMs?: number;
  /**
   * the helper reads only a copy (a staging volume), nothing a job holds down: it goes on while the job gives a
   * service back (label `swarm-utils.helper.works-on=copy`)
   */
  worksOnCopy?: boolean;
}

/** a Docker secret made for one job; named with the installation's helper prefix, labelled with the job id */
export interface SecretRef {
  id: string;
  name: string;
  jobId: number | null;
}

export interface SecretMount {
  secretId: string;
  secretName: string;
  /** file name under /run/secrets/ in the helper */
  file: string;
}

export interface HelperRef {
  id: string;
  name: string;
  jobId: number | null;
  /** HelperSpec.worksOnCopy, as its label says */
  worksOnCopy?: boolean;
}

export interface HelperResult {
  /** container exit code, null if the task never ran (rejected, node down…) */
  exitCode: number | null;
  /** final task state */
  state: string;
  /** Status.Err of the task, if any */
  error: string | null;
  /** demultiplexed stdout+stderr of the helper's task */
  output: string;
}

export interface ExecResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

export interface SelfInfo {
  nodeId: string;
  isManager: boolean;
  apiVersion: string;
}

export interface DockerPort {
  /** node id of the daemon we talk to and whether it is a swarm manager */
  self(): Promise<SelfInfo>;
  /**
   * the swarm service whose task runs this process (null outside a swarm task: a checkout, a test): its
   * image is the one restore helpers run. Optional: a fake port has none.
   */
  ownServiceId?(): Promise<string | null>;
  ping(): Promise<void>;

  getService(nameOrId: string): Promise<ServiceInfo | null>;
  listServices(): Promise<ServiceInfo[]>;
  listTasks(serviceId: string): Promise<TaskInfo[]>;
  getNode(idOrHostname: string): Promise<NodeInfo | null>;
  listNodes(): Promise<NodeInfo[]>;

  /**
   * POST /services/{id}/update with `version`; `spec` is a full ServiceSpec.
   * `auth` is sent as X-Registry-Auth so workers can pull a private image.
   */
  updateService(id: string, version: number, spec: Record<string, unknown>, auth?: RegistryAuth): Promise<void>;

  /** registry digest (`sha256:…`) of an image reference, through the manager's daemon */
  resolveDigest(image: string, auth?: RegistryAuth): Promise<string>;

  /** last `tail` lines of the service's logs (demultiplexed) */
  serviceLogs(serviceId: string, tail: number): Promise<string[]>;

  /** exec `cmd` in a container of the daemon we talk to (the manager's node) */
  execLocal(containerId: string, cmd: string[], opts: { timeoutMs: number; signal?: AbortSignal }): Promise<ExecResult>;

  /** create a helper service (replicated-job, 1 task, pinned, restart none); returns the existing one if `name` exists */
  createHelper(spec: HelperSpec): Promise<HelperRef>;
  /** helper services, optionally only those of one job */
  listHelpers(jobId?: number): Promise<HelperRef[]>;
  findHelper(name: string): Promise<HelperRef | null>;
  /**
   * wait until the helper's task has ended; throws a TIMEOUT error past timeoutMs. `pollMs`: how often the task
   * is looked at (default 400 ms; a helper inside a service's downtime is watched more closely). `logs: 'on-failure'`:
   * the output is read only when the task did not end with exit code 0 (its container may be gone by then otherwise)
   */
  waitHelper(ref: HelperRef, opts: { timeoutMs: number; signal?: AbortSignal; pollMs?: number; logs?: 'always' | 'on-failure' }): Promise<HelperResult>;
  /**
   * Stop a helper whatever its state, then remove it: its task is stopped and waited for (a removed
   * replicated-job leaves its container running on Docker 20.10), so nothing it did goes on afterwards.
   * A task on a node that is down cannot be waited for: it stops when the node's daemon comes back.
   * Throws TIMEOUT past timeoutMs. A missing helper is not an error.
   */
  stopHelper(ref: HelperRef, opts: { timeoutMs: number; signal?: AbortSignal }): Promise<void>;
  /** remove a service; a missing one is not an error */
  removeService(id: string): Promise<void>;

  /** create a Docker secret labelled `swarm-utils.helper=<jobId>`; returns the existing one if `name` exists (a re-entered step) */
  createSecret(spec: { name: string; jobId: number; data: string }): Promise<SecretRef>;
  /** secrets swarm-utils made, optionally only those of one job */
  listSecrets(jobId?: number): Promise<SecretRef[]>;
  /** remove a secret (its helpers must be gone first: Docker refuses a secret in use); a missing one is not an error */
  removeSecret(id: string): Promise<void>;
}
