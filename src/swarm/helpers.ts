/**
 * How helper services are named: `swarm-utils-<installation>-<job>-<step>-<key>`. The name is
 * deterministic, so a step re-entered after a crash finds (reattaches to) the helper it created, and the
 * installation prefix keeps two databases from adopting or removing each other's helpers.
 */

/** every helper of this installation starts with it */
export const helperPrefix = (instance: string): string => `swarm-utils-${instance}-`;

export function helperName(instance: string, jobId: number, step: string, key: string): string {
  return `${helperPrefix(instance)}${jobId}-${step}-${key.replace(/[^a-zA-Z0-9-]/g, '-')}`.slice(0, 63).replace(/-+$/, '');
}
