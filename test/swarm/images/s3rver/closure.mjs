// Prints the node_modules paths (relative to the project) of a package and of everything it needs,
// resolved the way Node resolves them (the nearest node_modules up the tree), one per line, sorted.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';

const [root, name] = process.argv.slice(2);
const seen = new Set();
function find(from, dep) {
  for (let dir = from; ; dir = path.dirname(dir)) {
    const candidate = path.join(dir, 'node_modules', dep);
    if (existsSync(path.join(candidate, 'package.json'))) return candidate;
    if (dir === root || dir === path.dirname(dir)) return null;
  }
}
function walk(dir) {
  if (seen.has(dir)) return;
  seen.add(dir);
  const pkg = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8'));
  for (const dep of Object.keys({ ...pkg.dependencies, ...pkg.optionalDependencies })) {
    const found = find(dir, dep);
    if (found) walk(found);
    else if (!(pkg.optionalDependencies ?? {})[dep]) throw new Error(`${dep} (needed by ${pkg.name}) is not installed`);
  }
}
walk(find(root, name) ?? (() => { throw new Error(`${name} is not installed`); })());
console.log([...seen].map((d) => path.relative(root, d)).sort().join('\n'));
