/**
 * docs/configuration.md names every variable the configuration knows (CONFIG_VARS of src/config.ts) and
 * every `swarm-utils.*` label the source reads or sets, each in backticks: a new variable or label
 * without its line there fails here, with its name.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { CONFIG_VARS } from '../../src/config.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const doc = readFileSync(path.join(ROOT, 'docs/configuration.md'), 'utf8');
/** named in backticks, alone or as an item of a comma list of names in one pair of backticks each */
const documented = (name: string) => doc.includes(`\`${name}\``);

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = path.join(dir, f);
    return statSync(p).isDirectory() ? sources(p) : p.endsWith('.ts') ? [p] : [];
  });
}

/** the label keys in string literals of src/ (comments dropped); `${x}` parts expanded from the `for … of [...]` lists beside them */
function labels(): Set<string> {
  const out = new Set<string>();
  for (const file of sources(path.join(ROOT, 'src'))) {
    const code = readFileSync(file, 'utf8').replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`])\/\/.*$/gm, '$1');
    for (const m of code.matchAll(/['"`](swarm-utils\.[a-z0-9.${}-]+)['"`]/g)) {
      const key = m[1]!;
      if (!key.includes('${')) {
        if (!key.endsWith('.')) out.add(key);
        continue;
      }
      // a template such as swarm-utils.clean.${what}.enable: its values are a union of quoted words in the same
      // file, `what: 'a' | 'b'` or `what: Kind` with `type Kind = 'a' | 'b'`
      const variable = /\$\{(\w+)\}/.exec(key)![1]!;
      const union = "((?:'[a-z-]+'\\s*\\|\\s*)*'[a-z-]+')";
      const typed = new RegExp(`\\b${variable}\\s*:\\s*(\\w+)`).exec(code)?.[1];
      const found = new RegExp(`\\b${variable}\\s*:\\s*${union}`).exec(code)?.[1] ?? (typed ? new RegExp(`type\\s+${typed}\\s*=\\s*${union}`).exec(code)?.[1] : undefined);
      const values = found ? [...found.matchAll(/'([a-z-]+)'/g)].map((v) => v[1]!) : [];
      expect(values.length, `${file}: the values of \${${variable}} in ${key}`).toBeGreaterThan(0);
      for (const v of values) out.add(key.replace(`\${${variable}}`, v));
    }
  }
  return out;
}

describe('docs/configuration.md', () => {
  it('names every variable of the config schema', () => {
    expect(CONFIG_VARS.length).toBeGreaterThan(30);
    expect(CONFIG_VARS.filter((v) => !documented(v))).toEqual([]);
  });
  it('names every swarm-utils.* label the source reads or sets', () => {
    const all = labels();
    expect(all.size).toBeGreaterThan(25);
    expect(all).toContain('swarm-utils.clean.image.timeout-ms');
    expect([...all].filter((l) => !documented(l)).sort()).toEqual([]);
  });
});
