/**
 * What a node's own daemon saw, from its event log: when containers ran, what happened to images. Tests
 * use it to prove that two things never overlapped on a node (an archive helper and the service whose
 * volume it reads; a prune and a stopped service), which the API's step times alone cannot show.
 */
import type Dockerode from 'dockerode';

export interface DaemonEvent {
  Type: string;
  Action: string;
  Actor: { ID: string; Attributes?: Record<string, string> };
  timeNano: number;
}

/** events since `sinceMs` (and until now), optionally filtered the Engine API's way */
export async function daemonEvents(d: Dockerode, sinceMs: number, filters: Record<string, string[]> = {}): Promise<DaemonEvent[]> {
  const stream = (await d.getEvents({
    since: Math.floor(sinceMs / 1000) - 1,
    until: Math.ceil(Date.now() / 1000) + 1,
    filters,
  } as never)) as unknown as NodeJS.ReadableStream;
  let text = '';
  for await (const chunk of stream) text += String(chunk);
  return text
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as DaemonEvent)
    .filter((e) => e.timeNano / 1e6 >= sinceMs - 1000);
}

export interface Lifetime {
  id: string;
  name: string;
  /** ms; -Infinity when it was already running at `sinceMs` */
  start: number;
  /** ms; Infinity when it still runs */
  end: number;
}

/** [start, die] of every container whose name matches, as the node's daemon recorded them, by start */
export async function containerLifetimes(d: Dockerode, sinceMs: number, match: (name: string) => boolean): Promise<Lifetime[]> {
  const events = await daemonEvents(d, sinceMs, { type: ['container'], event: ['start', 'die'] });
  const byId = new Map<string, Lifetime>();
  for (const e of events) {
    const name = e.Actor.Attributes?.name ?? '';
    if (!match(name)) continue;
    const l = byId.get(e.Actor.ID) ?? { id: e.Actor.ID, name, start: -Infinity, end: Infinity };
    if (e.Action === 'start') l.start = e.timeNano / 1e6;
    if (e.Action === 'die') l.end = e.timeNano / 1e6;
    byId.set(e.Actor.ID, l);
  }
  return [...byId.values()].sort((a, b) => a.start - b.start);
}

export const overlaps = (a: { start: number; end: number }, b: { start: number; end: number }): boolean => a.start < b.end && b.start < a.end;
