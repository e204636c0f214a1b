/**
 * The Docker port a step sees when the state is copied to the bucket (README "Losing its manager"):
 * every action waits until the bucket's copy holds every change made so far (what the step just recorded
 * to undo it, a hold, the step itself), so an instance that takes over on another manager knows about
 * whatever this one did. Reads go straight through. A call that meets a manager cut off from the
 * swarm's quorum waits until the swarm answers again, then is made again.
 */
import { isNoQuorum } from '../swarm/quorum.js';
import type { DockerPort } from '../swarm/port.js';
import type { StateGate } from './types.js';

/** calls that change something: each waits for the copy */
const ACTIONS = new Set<string>(['updateService', 'execLocal', 'createHelper', 'createSecret', 'stopHelper', 'removeService', 'removeSecret']);
/** clean-ups: a copy that fails does not stop them */
const CLEANUPS = new Set<string>(['stopHelper', 'removeService', 'removeSecret']);

export function gatedPort(docker: DockerPort, gate: StateGate, opts: { compensation: boolean; signal: AbortSignal }): DockerPort {
  return new Proxy(docker, {
    get(target, prop, receiver) {
      const value: unknown = Reflect.get(target, prop, receiver);
      if (typeof value !== 'function' || typeof prop !== 'string') return value;
      const fn = value as (...args: unknown[]) => Promise<unknown>;
      return async (...args: unknown[]) => {
        for (;;) {
          if (ACTIONS.has(prop)) await gate.beforeAct({ strict: !opts.compensation && !CLEANUPS.has(prop), signal: opts.signal });
          try {
            return await fn.apply(target, args);
          } catch (e) {
            if (!isNoQuorum(e)) throw e;
            await gate.waitQuorum(opts.signal);
          }
        }
      };
    },
  });
}
