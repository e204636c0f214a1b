// deploy/prometheus/rules.yml through Prometheus' own promtool (Debian's `prometheus` package, installed
// here when missing): `check rules`, then `test rules` with series as three scraped managers give them.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '../..');
const RULES = join(ROOT, 'deploy/prometheus/rules.yml');
const tmp = mkdtempSync(join(tmpdir(), 'swarm-utils-promtool-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

beforeAll(() => {
  if (spawnSync('promtool', ['--version']).status === 0) return;
  execFileSync('bash', ['-c', 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null'], { stdio: 'inherit' });
}, 600_000);

const TESTS = `
rule_files: [${JSON.stringify(RULES)}]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      # three managers scraped, one runs swarm-utils
      - { series: 'up{job="swarm-utils",instance="m1:8080"}', values: '1x20' }
      - { series: 'up{job="swarm-utils",instance="m2:8080"}', values: '0x20' }
      - { series: 'up{job="swarm-utils",instance="m3:8080"}', values: '0x20' }
    alert_rule_test:
      - { eval_time: 15m, alertname: SwarmUtilsDown, exp_alerts: [] }
  - interval: 1m
    input_series:
      - { series: 'up{job="swarm-utils",instance="m1:8080"}', values: '0x20' }
      - { series: 'up{job="swarm-utils",instance="m2:8080"}', values: '0x20' }
    alert_rule_test:
      - { eval_time: 10m, alertname: SwarmUtilsDown, exp_alerts: [{ exp_labels: { severity: critical }, exp_annotations: { summary: "No manager answers swarm-utils' /metrics for 5 minutes" } }] }
  - interval: 1m
    input_series:
      # the first failed update (no series before), and the backup count moving to another manager
      - { series: 'swarm_utils_jobs{type="update",state="failed",instance="m1:8080"}', values: '_x40 1x20' }
      - { series: 'swarm_utils_jobs{type="backup",state="failed",instance="m1:8080"}', values: '2x40 stale' }
      - { series: 'swarm_utils_jobs{type="backup",state="failed",instance="m2:8080"}', values: '_x40 2x20' }
    alert_rule_test:
      - { eval_time: 45m, alertname: SwarmUtilsJobFailed, exp_alerts: [{ exp_labels: { severity: warning, type: update }, exp_annotations: { summary: 'A swarm-utils update job failed (GET /jobs?type=update&state=failed)' } }] }
      - { eval_time: 35m, alertname: SwarmUtilsJobFailed, exp_alerts: [] }
  - interval: 1m
    input_series:
      # db never backed up (0), web just now at every scrape
      - { series: 'swarm_utils_backup_last_success_timestamp_seconds{service="db",volume="data",node="w1",instance="m1:8080"}', values: '0x1900' }
      - { series: 'swarm_utils_backup_last_success_timestamp_seconds{service="web",volume="www",node="w1",instance="m1:8080"}', values: '0+60x1900' }
    alert_rule_test:
      - { eval_time: 30h, alertname: SwarmUtilsBackupStale, exp_alerts: [{ exp_labels: { severity: critical, service: db, volume: data, node: w1 }, exp_annotations: { summary: 'No successful backup of volume data (db) on w1 for 26 h' } }] }
`;

describe('deploy/prometheus/rules.yml', () => {
  it('passes promtool check rules', () => {
    const r = spawnSync('promtool', ['check', 'rules', RULES], { encoding: 'utf8' });
    expect(r.status, r.stdout + r.stderr).toBe(0);
  });

  it('passes promtool test rules: down only when no manager answers, a new failure fires, a move does not, a stale backup fires', () => {
    const file = join(tmp, 'tests.yml');
    writeFileSync(file, TESTS);
    const r = spawnSync('promtool', ['test', 'rules', file], { encoding: 'utf8' });
    expect(r.status, r.stdout + r.stderr).toBe(0);
  });
});
