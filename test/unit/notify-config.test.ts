import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';

const HOOK = 'https://hooks.example.com/services/T0/B0/tok3n-in-path?key=query-tok3n';

const problems = (env: Record<string, string>) => {
  const r = loadConfig(env);
  if (r.ok) throw new Error('expected problems');
  return r.problems;
};

describe('SWARM_UTILS_NOTIFY_* (README "Notifications")', () => {
  it('defaults: off, failure, json', () => {
    const r = loadConfig({});
    expect(r.ok && r.config.notify).toEqual({ url: null, urls: [], on: 'failure', format: 'json' });
  });

  it('reads the URL, NOTIFY_ON and NOTIFY_FORMAT in any case', () => {
    const r = loadConfig({ SWARM_UTILS_NOTIFY_URL: ` ${HOOK} `, SWARM_UTILS_NOTIFY_ON: 'Always', SWARM_UTILS_NOTIFY_FORMAT: 'SLACK' });
    expect(r.ok && r.config.notify).toEqual({ url: HOOK, urls: [], on: 'always', format: 'slack' });
  });

  it('accepts the URL from a file (Docker secret) through SWARM_UTILS_NOTIFY_URL_FILE', () => {
    const r = loadConfig({ SWARM_UTILS_NOTIFY_URL_FILE: '/run/secrets/hook' }, { readFile: () => `${HOOK}\n` });
    expect(r.ok && r.config.notify.url).toBe(HOOK);
  });

  it('refuses a URL that is not http(s) without printing any of it', () => {
    for (const url of ['hooks.example.com/tok3n-in-path', 'ftp://hooks.example.com/tok3n-in-path', 'http://[bad/tok3n-in-path', 'https://u:%E0%A4%A@hooks.example.com/tok3n-in-path']) {
      const found = problems({ SWARM_UTILS_NOTIFY_URL: url });
      expect(found).toHaveLength(1);
      expect(found[0]).toMatch(/^SWARM_UTILS_NOTIFY_URL: (must be an|the user:password@ part)/);
      expect(found.join('\n')).not.toContain('tok3n');
      expect(found.join('\n')).not.toContain('hooks.example.com');
    }
  });

  it('refuses an unknown NOTIFY_ON or NOTIFY_FORMAT, naming the choices', () => {
    const found = problems({ SWARM_UTILS_NOTIFY_ON: 'sometimes', SWARM_UTILS_NOTIFY_FORMAT: 'xml' });
    expect(found).toEqual([
      'SWARM_UTILS_NOTIFY_ON: must be one of failure, always (got "sometimes")',
      'SWARM_UTILS_NOTIFY_FORMAT: must be one of json, slack (got "xml")',
    ]);
  });
});
