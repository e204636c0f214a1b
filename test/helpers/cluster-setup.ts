// vitest globalSetup of the cluster tests: the test swarm must already be up (the test command
// runs test/swarm/up.sh before vitest); this only checks it, and stops the run if it is broken.
import { run, SWARM_SCRIPTS_DIR } from './testbed.js';

export default async function setup(): Promise<void> {
  const res = await run('bash', [`${SWARM_SCRIPTS_DIR}check.sh`], { timeoutMs: 120_000 });
  if (res.code === 0) return;
  const failed = res.stdout
    .split('\n')
    .filter((line) => line.startsWith('FAILED'))
    .join('\n');
  throw new Error(
    `the test swarm is not ready (start it with: bash test/swarm/up.sh):\n${failed || `${res.stdout}${res.stderr}`}`,
  );
}
