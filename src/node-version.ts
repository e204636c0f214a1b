/** The Node major swarm-utils is built and tested on (CONTRIBUTING.md "Node version"; Dockerfile: node:24-bookworm-slim). */
export const MIN_NODE_MAJOR = 24;

/**
 * Refuses an older Node with a clear line, before anything native is touched: better-sqlite3 13 needs
 * Node-API 10, and an older Node crashes with a segmentation fault when the database is opened.
 */
export function exitOnOldNode(
  version: string = process.versions.node,
  write: (line: string) => void = (line) => void process.stderr.write(`${line}\n`),
): void {
  const major = Number(version.split('.')[0]);
  if (major >= MIN_NODE_MAJOR) return;
  write(`swarm-utils: needs Node.js ${MIN_NODE_MAJOR} or newer (this is v${version}); see CONTRIBUTING.md, "Node version"`);
  process.exit(1);
}
