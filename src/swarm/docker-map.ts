/**
 * Engine API objects (as JSON) → the port's plain types. Only the fields we read are declared;
 * everything is optional because Docker omits empty fields.
 */
import type { HelperRef, HelperSpec, NodeInfo, SecretRef, ServiceInfo, TaskInfo } from './port.js';

export const HELPER_LABEL = 'swarm-utils.helper';
/** `copy`: the helper reads only a copy, not what its job holds down (HelperSpec.worksOnCopy) */
export const WORKS_ON_LABEL = 'swarm-utils.helper.works-on';

/** 2 s: what a stopped helper gets between SIGTERM and SIGKILL */
export const HELPER_STOP_GRACE_NS = 2_000_000_000;

/** Task states after which a task never runs again. */
export const TERMINAL_TASK_STATES: ReadonlySet<string> = new Set(['complete', 'failed', 'rejected', 'shutdown', 'orphaned', 'remove']);

interface RawVersion {
  Index?: number;
}

export interface RawServiceSpec {
  Name?: string;
  Labels?: Record<string, string>;
  Mode?: {
    Replicated?: { Replicas?: number };
    Global?: object;
    ReplicatedJob?: object;
    GlobalJob?: object;
  };
  TaskTemplate?: { ContainerSpec?: { Image?: string }; ForceUpdate?: number };
}

export interface RawService {
  ID?: string;
  Version?: RawVersion;
  CreatedAt?: string;
  UpdatedAt?: string;
  Spec?: RawServiceSpec;
  PreviousSpec?: RawServiceSpec;
  UpdateStatus?: { State?: string; StartedAt?: string; CompletedAt?: string; Message?: string };
}

export interface RawTask {
  ID?: string;
  Version?: RawVersion;
  CreatedAt?: string;
  UpdatedAt?: string;
  ServiceID?: string;
  NodeID?: string;
  DesiredState?: string;
  Spec?: { ContainerSpec?: { Image?: string } };
  Status?: {
    State?: string;
    Message?: string;
    Err?: string;
    ContainerStatus?: { ContainerID?: string; ExitCode?: number };
  };
}

export interface RawNode {
  ID?: string;
  Spec?: { Name?: string; Role?: string; Availability?: string; Labels?: Record<string, string> };
  Description?: { Hostname?: string };
  Status?: { State?: string; Addr?: string };
}

const orNull = (s: string | undefined): string | null => (s === undefined || s === '' ? null : s);

function modeOf(spec: RawServiceSpec | undefined): ServiceInfo['mode'] {
  const m = spec?.Mode ?? {};
  if (m.Global) return 'global';
  if (m.ReplicatedJob) return 'replicated-job';
  if (m.GlobalJob) return 'global-job';
  return 'replicated'; // Docker's default when Mode is empty
}

export function toServiceInfo(s: RawService): ServiceInfo {
  const spec = s.Spec ?? {};
  const mode = modeOf(spec);
  const us = s.UpdateStatus;
  return {
    id: s.ID ?? '',
    name: spec.Name ?? '',
    version: s.Version?.Index ?? 0,
    labels: spec.Labels ?? {},
    mode,
    replicas: mode === 'replicated' ? (spec.Mode?.Replicated?.Replicas ?? 1) : null,
    image: spec.TaskTemplate?.ContainerSpec?.Image ?? '',
    previousImage: s.PreviousSpec?.TaskTemplate?.ContainerSpec?.Image || null,
    forceUpdate: spec.TaskTemplate?.ForceUpdate ?? 0,
    updateStatus: us
      ? { state: us.State ?? '', message: orNull(us.Message), startedAt: orNull(us.StartedAt), completedAt: orNull(us.CompletedAt) }
      : null,
    createdAt: s.CreatedAt ?? '',
    updatedAt: s.UpdatedAt ?? '',
    spec: spec as Record<string, unknown>,
  };
}

/**
 * The exit code only means something once the task's container has ended: a running task reports
 * ExitCode 0, a task that never got a container (rejected, pending on a down node) has no container id.
 */
function exitCodeOf(t: RawTask): number | null {
  const state = t.Status?.State ?? '';
  const cs = t.Status?.ContainerStatus;
  if (!TERMINAL_TASK_STATES.has(state) || !cs?.ContainerID) return null;
  return typeof cs.ExitCode === 'number' ? cs.ExitCode : null;
}

export function toTaskInfo(t: RawTask): TaskInfo {
  return {
    id: t.ID ?? '',
    serviceId: t.ServiceID ?? '',
    nodeId: orNull(t.NodeID),
    state: t.Status?.State ?? '',
    desiredState: t.DesiredState ?? '',
    containerId: orNull(t.Status?.ContainerStatus?.ContainerID),
    error: orNull(t.Status?.Err),
    message: orNull(t.Status?.Message),
    exitCode: exitCodeOf(t),
    image: t.Spec?.ContainerSpec?.Image ?? '',
    // The Engine API has no per-task service spec version (swarmkit's SpecVersion is not exposed;
    // Task.Version is the task object's own version). Compare `image` / the task spec instead.
    serviceVersion: null,
    createdAt: t.CreatedAt ?? '',
    updatedAt: t.UpdatedAt ?? '',
  };
}

export function toNodeInfo(n: RawNode): NodeInfo {
  const role = n.Spec?.Role === 'manager' ? 'manager' : 'worker';
  const av = n.Spec?.Availability;
  return {
    id: n.ID ?? '',
    hostname: n.Description?.Hostname ?? '',
    role,
    availability: av === 'pause' || av === 'drain' ? av : 'active',
    state: n.Status?.State ?? 'unknown',
    labels: n.Spec?.Labels ?? {},
    addr: orNull(n.Status?.Addr),
  };
}

export interface RawSecret {
  ID?: string;
  Spec?: { Name?: string; Labels?: Record<string, string> };
}

/** A secret is ours only if it carries the helper label (a user's secrets are never touched). */
export function toSecretRef(s: RawSecret): SecretRef | null {
  const label = s.Spec?.Labels?.[HELPER_LABEL];
  if (label === undefined) return null;
  return { id: s.ID ?? '', name: s.Spec?.Name ?? '', jobId: /^\d+$/.test(label) ? Number(label) : null };
}

/** A service is a helper only if it carries our label (never treat a user's service as one). */
export function toHelperRef(s: RawService): HelperRef | null {
  const label = s.Spec?.Labels?.[HELPER_LABEL];
  if (label === undefined) return null;
  const jobId = /^\d+$/.test(label) ? Number(label) : null;
  const ref: HelperRef = { id: s.ID ?? '', name: s.Spec?.Name ?? '', jobId };
  if (s.Spec?.Labels?.[WORKS_ON_LABEL] === 'copy') ref.worksOnCopy = true;
  return ref;
}

/**
 * ServiceSpec of a helper: a one-shot replicated job pinned to one node, never restarted
 * (a failed backup must be reported, not retried behind our back).
 */
export function helperServiceSpec(spec: HelperSpec): Record<string, unknown> {
  const containerSpec: Record<string, unknown> = {
    Image: spec.image,
    Env: Object.entries(spec.env).map(([k, v]) => `${k}=${v}`),
    Mounts: spec.mounts.map((m) => ({
      Type: m.type,
      Source: m.source,
      Target: m.target,
      ReadOnly: m.readOnly,
      ...(m.type === 'volume' && m.labels ? { VolumeOptions: { Labels: m.labels } } : {}),
    })),
  };
  // a helper that is stopped (its job ended, the process shuts down) gets little time: its work is abandoned
  containerSpec.StopGracePeriod = spec.stopGracePeriodMs !== undefined ? spec.stopGracePeriodMs * 1_000_000 : HELPER_STOP_GRACE_NS;
  if (spec.command) containerSpec.Command = spec.command;
  if (spec.args) containerSpec.Args = spec.args;
  if (spec.secrets?.length) {
    // files under /run/secrets/ (a tmpfs): the values are in no spec, no `docker inspect`, no env
    containerSpec.Secrets = spec.secrets.map((s) => ({
      File: { Name: s.file, UID: '0', GID: '0', Mode: 0o444 },
      SecretID: s.secretId,
      SecretName: s.secretName,
    }));
  }
  return {
    Name: spec.name,
    Labels: { [HELPER_LABEL]: String(spec.jobId), ...(spec.worksOnCopy ? { [WORKS_ON_LABEL]: 'copy' } : {}) },
    Mode: { ReplicatedJob: { MaxConcurrent: 1, TotalCompletions: 1 } },
    TaskTemplate: {
      ContainerSpec: containerSpec,
      RestartPolicy: { Condition: 'none' },
      Placement: { Constraints: [`node.id==${spec.nodeId}`] },
      ...(spec.networks?.length ? { Networks: spec.networks.map((target) => ({ Target: target })) } : {}),
    },
  };
}
