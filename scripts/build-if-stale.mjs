#!/usr/bin/env node
// `npm start` from a checkout (prestart): compiles TypeScript only when dist/ is older than what it is
// built from (src/ and the tsconfig files), so a restart does not wait for tsc. The image runs
// `node dist/main.js` itself and has no src/: nothing to do there.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

const root = process.cwd();
const INPUTS = ['src', 'tsconfig.json', 'tsconfig.build.json'];
const OUTPUT = join(root, 'dist', 'main.js');

/** the newest modification time under `path` (a file or a directory), 0 when it does not exist */
function newest(path) {
  if (!existsSync(path)) return 0;
  const st = statSync(path);
  if (!st.isDirectory()) return st.mtimeMs;
  return readdirSync(path).reduce((max, name) => Math.max(max, newest(join(path, name))), st.mtimeMs);
}

if (!existsSync(join(root, 'src'))) process.exit(0);
const source = Math.max(...INPUTS.map((p) => newest(join(root, p))));
const built = existsSync(OUTPUT) ? statSync(OUTPUT).mtimeMs : 0;
if (built >= source) {
  console.error('swarm-utils: dist/ is up to date with src/: not building');
  process.exit(0);
}
console.error(built ? 'swarm-utils: src/ changed since the last build: npm run build' : 'swarm-utils: no dist/main.js yet: npm run build');
const r = spawnSync('npm', ['run', '-s', 'build'], { cwd: root, stdio: 'inherit' });
process.exit(r.status ?? 1);
