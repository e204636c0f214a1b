import { usage } from './exit.js';

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** "90s", "10m", "1h", "500ms" or a number of seconds */
export function parseDuration(text: string, flag = '--timeout'): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  const ms = m ? Number(m[1]) * UNIT_MS[m[2] ?? 's']! : NaN;
  if (!Number.isFinite(ms) || ms <= 0 || ms > 2_147_483_647) throw usage(`${flag} must be a duration such as 90s, 10m or 1h (got ${JSON.stringify(text)})`);
  return ms;
}

/** a job id as the API takes it: a whole number in decimal digits */
export function parseJobId(text: string): number {
  if (!/^\d{1,15}$/.test(text) || Number(text) < 1) throw usage(`a job id is a whole number such as 12 (got ${JSON.stringify(text)})`);
  return Number(text);
}
