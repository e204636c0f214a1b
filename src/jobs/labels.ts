/** Label keys (README "Labels") and helpers to read them. */
export const L = {
  cleanEnable: 'swarm-utils.clean.enable',
  cleanExec: 'swarm-utils.clean.exec',
  cleanToken: 'swarm-utils.clean.token',
  cleanTimeout: 'swarm-utils.clean.timeout-ms',
  backupEnable: 'swarm-utils.backup.enable',
  backupExec: 'swarm-utils.backup.exec',
  backupStop: 'swarm-utils.backup.stop',
  backupVolumes: 'swarm-utils.backup.volume-list',
  backupToken: 'swarm-utils.backup.token',
  backupRetentionDays: 'swarm-utils.backup.retention-days',
  /** the service's own backup schedule, instead of SWARM_UTILS_CRON_EXPR (src/schedules.ts) */
  backupCron: 'swarm-utils.backup.cron',
  /** the service's own drill schedule, instead of a drill after each cron backup */
  drillCron: 'swarm-utils.drill.cron',
  restoreToken: 'swarm-utils.restore.token',
  /** `false`: a stop=true backup archives in place while stopped (no staging copy) */
  backupStage: 'swarm-utils.backup.stage',
  updateToken: 'swarm-utils.update.token',
  updateExecPre: 'swarm-utils.update.exec-pre',
  updateExecPost: 'swarm-utils.update.exec-post',
  updateTimeout: 'swarm-utils.update.timeout-ms',
  nodeTokenList: 'swarm-utils.clean.token-list',
  helper: 'swarm-utils.helper',
} as const;

/** comma list, trimmed, empty items ignored */
export const list = (v: string | undefined): string[] => (v ?? '').split(',').map((s) => s.trim()).filter(Boolean);

/** `true`/`false` label; anything else (or missing) is the default */
export function flag(labels: Record<string, string>, key: string, dflt: boolean): boolean {
  const v = labels[key]?.trim().toLowerCase();
  return v === 'true' ? true : v === 'false' ? false : dflt;
}

const SECRET_KEY = /(token|password|secret)/i;

/** label values that hold tokens or passwords are replaced, everywhere labels leave the process */
export function redactLabels(labels: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(labels).map(([k, v]) => [k, SECRET_KEY.test(k) ? '[redacted]' : v]));
}

/** only swarm-utils.* labels */
export const ownLabels = (labels: Record<string, string>): Record<string, string> =>
  Object.fromEntries(Object.entries(labels).filter(([k]) => k.startsWith('swarm-utils.')));
