import type { Config } from '../config.js';

/**
 * What GET /status says about the running configuration (docs/install.md "Checking a deployment"): enough
 * to see that each setting of the env file took effect, nothing secret. Tokens are counted, a notification
 * URL is only said to be set, S3 and registry credentials are left out, BACKUP_ENV_* show their names only.
 */
export function configSummary(config: Config) {
  return {
    cron: { backup: config.isCronBackup, clean: config.isCronClean, drill: config.isCronDrill, expr: config.cronExpr, tz: config.cronTz },
    s3: config.s3.domain
      ? { domain: config.s3.domain, https: config.s3.https, bucket: config.s3.bucket, path: config.s3.path, region: config.s3.region, pathStyle: config.s3.pathStyle, caCert: config.s3.caCert !== null }
      : null,
    registry: config.registry.url ? { url: config.registry.url } : null,
    helperNetworks: config.helperNetworks,
    dockerCliImage: config.dockerCliImage,
    backupImage: config.backupImage,
    backupStage: config.backupStage,
    backupRetentionDays: config.backupRetentionDays,
    backupEnv: Object.keys(config.backupEnv).sort(),
    jobRetentionDays: config.jobRetentionDays,
    concurrency: config.concurrency,
    locks: { timeoutMs: config.lockTimeoutMs, maxExecutionMs: config.lockMaxExecutionMs, maxOccupationMs: config.lockMaxOccupationMs },
    tokens: { admin: config.adminTokens.length, metrics: config.metricsTokens.length, query: config.queryToken },
    notify: { url: config.notify.url !== null, urls: config.notify.urls.length, on: config.notify.on, format: config.notify.format },
    stateCopy: config.stateCopy,
    logLevel: config.logLevel,
    shutdownTimeoutMs: config.shutdownTimeoutMs,
  };
}
export type ConfigSummary = ReturnType<typeof configSummary>;
