/**
 * The DockerPort on dockerode, talking to the Engine API of the manager we run on.
 *
 * Create, update and service logs go through `docker.modem.dial` directly:
 * - dockerode's `service.update(auth, opts)` puts the whole `opts` (spec + version) into the query
 *   string *and* the body; with `_query`/`_body` only `version` is in the URL.
 * - dockerode's one-argument `createService(spec)` sends the spec itself as X-Registry-Auth.
 * - `service.logs({follow: false})` JSON-parses the body when it happens to parse, which breaks
 *   the raw frames; a stream gives the bytes as they are.
 */
import { readFileSync } from 'node:fs';
import Dockerode from 'dockerode';
import type DockerModem from 'docker-modem';
import type { Logger } from '../log.js';
import { AppError } from '../errors.js';
import type {
  DockerPort,
  ExecResult,
  HelperRef,
  HelperResult,
  HelperSpec,
  NodeInfo,
  RegistryAuth,
  SecretRef,
  SelfInfo,
  ServiceInfo,
  TaskInfo,
} from './port.js';
import { Demuxer, TailBuffer, lastLogLines, splitLines } from './demux.js';
import {
  HELPER_LABEL,
  TERMINAL_TASK_STATES,
  helperServiceSpec,
  toHelperRef,
  toNodeInfo,
  toSecretRef,
  toServiceInfo,
  toTaskInfo,
  type RawNode,
  type RawSecret,
  type RawService,
  type RawTask,
} from './docker-map.js';
import { cancelError, dockerMessage, sleep, statusOf, toAppError, withDeadline, type DeadlineOpts } from './docker-util.js';

/** Output kept per stream of an exec / of a helper (the tail: that is where errors are). */
export const OUTPUT_CAP = 64 * 1024;
const SERVICE_LOGS_CAP = 1024 * 1024;
/** Lines of a helper's log fetched; bounds memory before the byte cap applies. */
const HELPER_LOG_LINES = 5000;
const POLL_MS = 400;
/** Logs of a task that just ended can reach the manager a moment later: looked for again for LOG_RETRIES × POLL_MS. */
const LOG_RETRIES = 5;

type Dial = DockerModem.DialOptions;

/** info, version and ping take options (abortSignal) at run time, though their types do not say so */
const signalled = <T>(fn: unknown) => fn as (opts: { abortSignal: AbortSignal }) => Promise<T>;

/** default limit of one Engine API call (waits and streams have their own deadlines) */
export const CALL_TIMEOUT_MS = 30_000;
/** how long a stopped helper's task may take to end (its grace period is 2 s) */
const HELPER_STOP_MS = 30_000;

/**
 * `callTimeoutMs` bounds every Engine API call (dockerode has no timeout of its own): a daemon that accepts
 * the connection and never answers fails the call with TIMEOUT instead of holding a step forever.
 */
/**
 * The id of the container this process runs in, from the bind mounts Docker makes of its own files
 * (`/var/lib/docker/containers/<id>/hostname`): the hostname can be set by a stack, this cannot.
 */
function ownContainerId(): string | null {
  try {
    const m = /\/containers\/([0-9a-f]{64})\/(?:hostname|hosts|resolv\.conf)\s/.exec(readFileSync('/proc/self/mountinfo', 'utf8'));
    return m?.[1] ?? null;
  } catch {
    return null;
  }
}

export function createDockerPort(opts: { docker?: Dockerode; logger: Logger; callTimeoutMs?: number }): DockerPort {
  return new DockerodePort(opts.docker ?? new Dockerode(), opts.logger.child({ component: 'docker' }), opts.callTimeoutMs ?? CALL_TIMEOUT_MS);
}

class DockerodePort implements DockerPort {
  constructor(
    private readonly docker: Dockerode,
    private readonly log: Logger,
    private readonly callTimeoutMs: number,
  ) {}

  /**
   * Every Docker call goes through here: one debug line with the object it is about, errors mapped, and a
   * deadline: past it the call fails TIMEOUT and its request is aborted (through the signal `fn` passes on).
   */
  private async call<T>(op: string, id: string | undefined, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
    this.log.debug({ op, id }, 'docker call');
    const ctrl = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const err = new AppError('TIMEOUT', `Docker did not answer ${op}${id ? ` of ${id}` : ''} within ${this.callTimeoutMs} ms`);
        ctrl.abort(err);
        reject(err);
      }, this.callTimeoutMs);
    });
    try {
      return await Promise.race([fn(ctrl.signal), deadline]);
    } catch (e) {
      throw toAppError(e);
    } finally {
      clearTimeout(timer);
    }
  }

  /** `options.abortSignal`, when given, is the caller's (a stream outlives the call); otherwise the call's deadline aborts the request */
  private dial<T>(op: string, id: string, options: Dial): Promise<T> {
    return this.call(op, id, (signal) => new Promise<T>((resolve, reject) => {
      this.docker.modem.dial({ abortSignal: signal, ...options }, (err, data) => (err ? reject(err) : resolve(data as T)));
    }));
  }

  async self(): Promise<SelfInfo> {
    const info = (await this.call('info', undefined, (abortSignal) => signalled<unknown>(this.docker.info.bind(this.docker))({ abortSignal }))) as {
      Swarm?: { NodeID?: string; ControlAvailable?: boolean };
    };
    const version = await this.call('version', undefined, (abortSignal) => signalled<{ ApiVersion: string }>(this.docker.version.bind(this.docker))({ abortSignal }));
    return {
      nodeId: info.Swarm?.NodeID ?? '',
      isManager: info.Swarm?.ControlAvailable === true,
      apiVersion: version.ApiVersion,
    };
  }

  async ownServiceId(): Promise<string | null> {
    const id = ownContainerId();
    if (!id) return null;
    try {
      const c = (await this.call('container.inspect', id, (abortSignal) => this.docker.getContainer(id).inspect({ abortSignal }))) as {
        Config?: { Labels?: Record<string, string> };
      };
      return c.Config?.Labels?.['com.docker.swarm.service.id'] ?? null;
    } catch (e) {
      // a container of another daemon (the socket is not the local one), or no container at all
      if (statusOf(e) === 404) return null;
      throw e;
    }
  }

  async ping(): Promise<void> {
    await this.call('ping', undefined, (abortSignal) => signalled<unknown>(this.docker.ping.bind(this.docker))({ abortSignal }));
  }

  /**
   * Inspect accepts a full id, a name or an id prefix (tried in that order). Only an exact id or
   * name counts: `web` must not find `webapp`'s prefix-matching id, a short id must not resolve.
   */
  private async inspectService(nameOrId: string): Promise<RawService | null> {
    if (nameOrId === '') return null;
    let raw: RawService;
    try {
      raw = (await this.call('service.inspect', nameOrId, (abortSignal) => this.docker.getService(nameOrId).inspect({ abortSignal }))) as RawService;
    } catch (e) {
      // 404: none; "ambiguous" (400): several ids share the prefix, so no exact id or name matched
      if (statusOf(e) === 404 || (statusOf(e) === 400 && /ambiguous/i.test(dockerMessage(e)))) return null;
      throw e;
    }
    return raw.ID === nameOrId || raw.Spec?.Name === nameOrId ? raw : null;
  }

  async getService(nameOrId: string): Promise<ServiceInfo | null> {
    const raw = await this.inspectService(nameOrId);
    return raw ? toServiceInfo(raw) : null;
  }

  async listServices(): Promise<ServiceInfo[]> {
    const raw = (await this.call('service.list', undefined, (abortSignal) => this.docker.listServices({ abortSignal }))) as RawService[];
    return raw.map(toServiceInfo);
  }

  /** Tasks of a service, or null when the service does not exist (the `service` filter 404s then). */
  private async tasksOf(serviceId: string): Promise<RawTask[] | null> {
    let raw: RawTask[];
    try {
      raw = (await this.call('task.list', serviceId, (abortSignal) =>
        this.docker.listTasks({ filters: { service: [serviceId] }, abortSignal }),
      )) as RawTask[];
    } catch (e) {
      if (statusOf(e) === 404) return null;
      throw e;
    }
    // the filter also resolves names and id prefixes: keep only this exact service's tasks
    return raw
      .filter((t) => t.ServiceID === serviceId)
      .sort((a, b) => (a.CreatedAt ?? '').localeCompare(b.CreatedAt ?? ''));
  }

  async listTasks(serviceId: string): Promise<TaskInfo[]> {
    return ((await this.tasksOf(serviceId)) ?? []).map(toTaskInfo);
  }

  /** By exact id, hostname or node name; the list fallback covers names inspect does not resolve. */
  async getNode(idOrHostname: string): Promise<NodeInfo | null> {
    if (idOrHostname === '') return null;
    const matches = (n: RawNode): boolean =>
      n.ID === idOrHostname || n.Description?.Hostname === idOrHostname || n.Spec?.Name === idOrHostname;
    try {
      const raw = (await this.call('node.inspect', idOrHostname, (abortSignal) => this.docker.getNode(idOrHostname).inspect({ abortSignal }))) as RawNode;
      if (matches(raw)) return toNodeInfo(raw);
    } catch (e) {
      if (statusOf(e) !== 404 && statusOf(e) !== 400) throw e;
    }
    const all = (await this.call('node.list', undefined, (abortSignal) => this.docker.listNodes({ abortSignal }))) as RawNode[];
    const found = all.find((n) => n.ID === idOrHostname) ?? all.find(matches);
    return found ? toNodeInfo(found) : null;
  }

  async listNodes(): Promise<NodeInfo[]> {
    const raw = (await this.call('node.list', undefined, (abortSignal) => this.docker.listNodes({ abortSignal }))) as RawNode[];
    return raw.map(toNodeInfo);
  }

  async updateService(id: string, version: number, spec: Record<string, unknown>, auth?: RegistryAuth): Promise<void> {
    const res = await this.dial<{ Warnings?: string[] | null }>('service.update', id, {
      path: `/services/${encodeURIComponent(id)}/update?`,
      method: 'POST',
      // only `version` goes into the URL; the spec is the body, untouched
      options: { _query: { version }, _body: spec },
      // sent as X-Registry-Auth (base64url JSON) and stored with the task spec, so workers can pull
      authconfig: auth,
      statusCodes: { 200: true, 400: 'bad parameter', 404: 'no such service', 500: 'server error', 503: 'node is not part of a swarm' },
    });
    for (const w of res?.Warnings ?? []) this.log.warn({ serviceId: id, warning: w }, 'docker warning on service update');
  }

  /** through our own dial: dockerode's `distribution` passes no abort signal, so a hung registry could not be given up on */
  async resolveDigest(image: string, auth?: RegistryAuth): Promise<string> {
    // the registry's name only: its user name is a credential too
    this.log.debug({ registry: auth?.serveraddress }, 'registry credentials for the distribution call');
    let data: { Descriptor?: { digest?: string } };
    try {
      data = await this.dial('distribution', image, {
        path: `/distribution/${image}/json`,
        method: 'GET',
        authconfig: auth,
        statusCodes: { 200: true, 401: 'no such image or no access', 403: 'denied', 404: 'no such image', 500: 'server error' },
      });
    } catch (e) {
      const err = toAppError(e);
      if (err.code === 'TIMEOUT') throw new AppError('TIMEOUT', `the registry of ${image} did not answer within ${this.callTimeoutMs} ms`);
      // never let the password reach a message (and so a log line or an API answer)
      const password = auth?.password;
      throw new AppError('REGISTRY_ERROR', password ? err.message.split(password).join('[redacted]') : err.message, err.details);
    }
    const digest = data?.Descriptor?.digest;
    if (!digest) throw new AppError('REGISTRY_ERROR', `registry gave no digest for ${image}`);
    return digest;
  }

  /** Demultiplexed stdout+stderr of a service's logs, at most `cap` bytes (the end). */
  private async fetchLogs(
    serviceId: string,
    opts: { tail: number; cap: number; timestamps?: boolean; signal?: AbortSignal },
  ): Promise<string> {
    const { tail, cap, signal } = opts;
    const stream = await this.dial<NodeJS.ReadableStream & { destroy?: () => void }>('service.logs', serviceId, {
      path: `/services/${encodeURIComponent(serviceId)}/logs?`,
      method: 'GET',
      isStream: true,
      abortSignal: signal,
      options: { stdout: true, stderr: true, follow: false, tail, timestamps: opts.timestamps ?? false },
      statusCodes: { 200: true, 404: 'no such service', 500: 'server error', 503: 'node is not part of a swarm' },
    });
    const out = new TailBuffer(cap);
    const demuxer = new Demuxer((_stream, chunk) => out.write(chunk));
    await this.drain(stream, demuxer, `logs of ${serviceId}`, signal);
    const text = out.toString();
    // a cut tail starts mid-line: drop that partial line
    return out.truncated ? text.slice(text.indexOf('\n') + 1) : text;
  }

  /** Feed a response stream into a demuxer until it ends; an abort destroys the stream. */
  private async drain(stream: NodeJS.ReadableStream & { destroy?: () => void }, demuxer: Demuxer, what: string, signal?: AbortSignal): Promise<void> {
    const onAbort = (): void => stream.destroy?.();
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      for await (const chunk of stream) demuxer.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk));
    } catch (e) {
      if (signal?.aborted) throw cancelError(signal, what);
      throw toAppError(e);
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
    if (signal?.aborted) throw cancelError(signal, what);
    demuxer.end();
  }

  /** `tail` is applied per task by Docker: fetch with timestamps, order, then cut to `tail` overall. */
  async serviceLogs(serviceId: string, tail: number): Promise<string[]> {
    if (tail <= 0) return [];
    const text = await this.fetchLogs(serviceId, { tail, cap: SERVICE_LOGS_CAP, timestamps: true });
    return lastLogLines(splitLines(text), tail);
  }

  async execLocal(containerId: string, cmd: string[], opts: DeadlineOpts): Promise<ExecResult> {
    return withDeadline(`exec in container ${containerId}`, opts, async (signal) => {
      const container = this.docker.getContainer(containerId);
      const exec = await this.call('container.exec', containerId, () =>
        container.exec({ Cmd: cmd, AttachStdout: true, AttachStderr: true, Tty: false, abortSignal: signal }),
      );
      // the attach stream outlives the call: it goes with the exec's own deadline (signal), not the call's
      const stream = (await this.call('exec.start', exec.id, () =>
        exec.start({ hijack: true, stdin: false, abortSignal: signal }),
      )) as NodeJS.ReadableStream & { destroy?: () => void };
      const stdout = new TailBuffer(OUTPUT_CAP);
      const stderr = new TailBuffer(OUTPUT_CAP);
      const demuxer = new Demuxer((s, chunk) => (s === 'stderr' ? stderr : stdout).write(chunk));
      // note: on timeout we only stop listening; Docker has no API to kill an exec'd process
      await this.drain(stream, demuxer, `exec in container ${containerId}`, signal);
      const exitCode = await this.execExitCode(exec, signal);
      return { exitCode, stdout: stdout.toString(), stderr: stderr.toString() };
    });
  }

  /** The attach stream can end a moment before Docker records the exit code. */
  private async execExitCode(exec: Dockerode.Exec, signal: AbortSignal): Promise<number> {
    for (let i = 0; ; i++) {
      const info = await this.call('exec.inspect', exec.id, () => exec.inspect({ abortSignal: signal }));
      if (!info.Running && typeof info.ExitCode === 'number') return info.ExitCode;
      if (i >= 20) throw new AppError('DOCKER_ERROR', `exec ${exec.id} ended its output but reports no exit code`);
      if (!(await sleep(100, signal))) throw cancelError(signal, `exec ${exec.id}`);
    }
  }

  async createHelper(spec: HelperSpec): Promise<HelperRef> {
    let res: { ID?: string; Warnings?: string[] | null };
    try {
      res = await this.dial('service.create', spec.name, {
        path: '/services/create',
        method: 'POST',
        options: helperServiceSpec(spec),
        // so the worker the helper is pinned to can pull a private image
        authconfig: spec.auth,
        statusCodes: { 200: true, 201: true, 400: 'bad parameter', 403: 'network is not eligible', 409: 'name conflicts', 500: 'server error', 503: 'node is not part of a swarm' },
      });
    } catch (e) {
      if (statusOf(e) !== 409 && !/already exists|name conflicts/i.test(dockerMessage(e))) throw e;
      // re-entered after a crash: the helper made last time is the one to wait for
      const existing = await this.findHelper(spec.name);
      if (existing) return existing;
      throw new AppError('DOCKER_ERROR', `a service named ${spec.name} exists and is not a swarm-utils helper`);
    }
    for (const w of res.Warnings ?? []) this.log.warn({ helper: spec.name, warning: w }, 'docker warning on helper create');
    return { id: res.ID ?? '', name: spec.name, jobId: spec.jobId };
  }

  async findHelper(name: string): Promise<HelperRef | null> {
    const raw = await this.inspectService(name);
    return raw ? toHelperRef(raw) : null;
  }

  async listHelpers(jobId?: number): Promise<HelperRef[]> {
    const label = jobId === undefined ? HELPER_LABEL : `${HELPER_LABEL}=${jobId}`;
    const raw = (await this.call('service.list', label, (abortSignal) =>
      this.docker.listServices({ filters: { label: [label] }, abortSignal }),
    )) as RawService[];
    return raw.map(toHelperRef).filter((h): h is HelperRef => h !== null);
  }

  async waitHelper(ref: HelperRef, opts: DeadlineOpts & { pollMs?: number; logs?: 'always' | 'on-failure' }): Promise<HelperResult> {
    const pollMs = opts.pollMs ?? POLL_MS;
    return withDeadline(`helper ${ref.name}`, opts, async (signal) => {
      const task = await this.waitTerminalTask(ref, signal, pollMs);
      const info = toTaskInfo(task);
      const output = opts.logs === 'on-failure' && info.exitCode === 0 ? '' : await this.helperOutput(ref, info.exitCode, signal, pollMs);
      return { exitCode: info.exitCode, state: info.state, error: info.error, output };
    });
  }

  /** Poll until the helper has a task and none is still live; a pending task keeps us waiting (the deadline ends that). */
  private async waitTerminalTask(ref: HelperRef, signal: AbortSignal, pollMs: number): Promise<RawTask> {
    for (;;) {
      const tasks = await this.tasksOf(ref.id);
      if (tasks === null) throw new AppError('DOCKER_ERROR', `helper service ${ref.name} no longer exists`);
      const last = tasks[tasks.length - 1];
      if (last && tasks.every((t) => TERMINAL_TASK_STATES.has(t.Status?.State ?? ''))) return last;
      if (!(await sleep(pollMs, signal))) throw cancelError(signal, `helper ${ref.name}`);
    }
  }

  private async helperOutput(ref: HelperRef, exitCode: number | null, signal: AbortSignal, pollMs: number): Promise<string> {
    for (let i = 0; ; i++) {
      let text: string;
      try {
        text = await this.fetchLogs(ref.id, { tail: HELPER_LOG_LINES, cap: OUTPUT_CAP, signal });
      } catch (e) {
        if (statusOf(e) !== 404) throw e;
        // removed by someone else after its task ended: the outcome is known, only the output is lost
        this.log.warn({ helper: ref.name, serviceId: ref.id }, 'helper service vanished before its logs were read');
        return '';
      }
      // a container that ran may still have its last lines in flight; one that never ran has none
      if (text !== '' || exitCode === null || i * pollMs >= LOG_RETRIES * POLL_MS) return text;
      if (!(await sleep(pollMs, signal))) throw cancelError(signal, `helper ${ref.name}`);
    }
  }

  async createSecret(spec: { name: string; jobId: number; data: string }): Promise<SecretRef> {
    const body = { Name: spec.name, Labels: { [HELPER_LABEL]: String(spec.jobId) }, Data: Buffer.from(spec.data, 'utf8').toString('base64') };
    try {
      const created = await this.call('secret.create', spec.name, () => this.docker.createSecret(body));
      return { id: (created as unknown as { id: string }).id, name: spec.name, jobId: spec.jobId };
    } catch (e) {
      if (statusOf(e) !== 409 && !/already exists/i.test(dockerMessage(e))) throw e;
      // re-entered after a crash: the secret made last time holds the same value
      const raw = (await this.call('secret.inspect', spec.name, () => this.docker.getSecret(spec.name).inspect())) as RawSecret;
      const ref = raw.Spec?.Name === spec.name ? toSecretRef(raw) : null;
      if (ref) return ref;
      throw new AppError('DOCKER_ERROR', `a secret named ${spec.name} exists and is not a swarm-utils secret`);
    }
  }

  async listSecrets(jobId?: number): Promise<SecretRef[]> {
    const label = jobId === undefined ? HELPER_LABEL : `${HELPER_LABEL}=${jobId}`;
    const raw = (await this.call('secret.list', label, () => this.docker.listSecrets({ filters: { label: [label] } }))) as RawSecret[];
    return raw.map(toSecretRef).filter((s): s is SecretRef => s !== null);
  }

  async removeSecret(id: string): Promise<void> {
    // a helper just removed may still be referenced for a moment: Docker refuses a secret in use
    for (let i = 0; ; i++) {
      try {
        await this.call('secret.remove', id, () => this.docker.getSecret(id).remove());
        return;
      } catch (e) {
        if (statusOf(e) === 404) return;
        if (i >= 20 || !/in use/i.test(dockerMessage(e))) throw e;
        await sleep(250);
      }
    }
  }

  async stopHelper(ref: HelperRef, opts: DeadlineOpts): Promise<void> {
    const raw = await this.inspectService(ref.id || ref.name);
    if (!raw?.ID || raw.Spec?.Labels?.[HELPER_LABEL] === undefined) return;
    const serviceId = raw.ID;
    const live = (tasks: RawTask[]) => tasks.filter((t) => !TERMINAL_TASK_STATES.has(t.Status?.State ?? ''));
    const before = await this.tasksOf(serviceId);
    if (before && live(before).length) {
      // zero completions: the task's desired state becomes `remove` and its container is stopped
      const spec = { ...(raw.Spec as Record<string, unknown>), Mode: { ReplicatedJob: { MaxConcurrent: 0, TotalCompletions: 0 } } };
      try {
        await this.dial('service.update', serviceId, {
          path: `/services/${encodeURIComponent(serviceId)}/update?`,
          method: 'POST',
          options: { _query: { version: raw.Version?.Index ?? 0 }, _body: spec },
          statusCodes: { 200: true, 400: 'bad parameter', 404: 'no such service', 500: 'server error', 503: 'node is not part of a swarm' },
        });
      } catch (e) {
        if (statusOf(e) === 404) return;
        throw e;
      }
      await withDeadline(`the stop of helper ${ref.name}`, opts, async (signal) => {
        for (;;) {
          const tasks = await this.tasksOf(serviceId);
          const running = tasks === null ? [] : live(tasks);
          if (!running.length || (await this.onDownNodes(running))) return;
          if (!(await sleep(POLL_MS, signal))) throw cancelError(signal, `the stop of helper ${ref.name}`);
        }
      });
      this.log.info({ helper: ref.name }, 'helper stopped');
    }
    await this.removeService(serviceId);
  }

  /** true when every task runs on a node that is not ready: nothing can stop them now */
  private async onDownNodes(tasks: RawTask[]): Promise<boolean> {
    const nodes = await this.listNodes();
    return tasks.every((t) => nodes.find((n) => n.id === t.NodeID)?.state !== 'ready');
  }

  async removeService(id: string): Promise<void> {
    // remove resolves names and id prefixes too: only ever remove the exact service meant
    const raw = await this.inspectService(id);
    if (!raw?.ID) return;
    const serviceId = raw.ID;
    try {
      await this.call('service.remove', serviceId, (abortSignal) => this.docker.getService(serviceId).remove({ abortSignal }));
    } catch (e) {
      if (statusOf(e) !== 404) throw e;
    }
  }
}
