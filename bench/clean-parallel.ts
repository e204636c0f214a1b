/**
 * Nodes are cleaned in parallel: the wall time of `clean all` over every node, against a baseline of
 * cleaning one node, both through the real server on the test swarm in this one run.
 * Run: bash test/swarm/up.sh && npx tsx bench/clean-parallel.ts [rounds]
 */
import { startServer } from '../test/helpers/server.js';
import { serverEnv, manager } from '../test/helpers/cluster.js';

const rounds = Number(process.argv[2] ?? 3);
const s = await startServer(serverEnv());
const nodes = (await manager.listNodes()).map((n: any) => n.Description.Hostname as string);

async function timed(body: object): Promise<number> {
  const t0 = performance.now();
  const r = await s.api('POST', '/jobs', { ...body, waitRes: true });
  if (r.status !== 200) throw new Error(`job failed: ${JSON.stringify(r.json)}`);
  return performance.now() - t0;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
try {
  const one: number[] = [];
  const all: number[] = [];
  for (let i = 0; i < rounds; i++) {
    one.push(await timed({ type: 'clean', node: nodes[i % nodes.length] }));
    all.push(await timed({ type: 'clean', all: true }));
  }
  const ratio = median(all) / median(one);
  console.log(`clean one node (baseline): median ${median(one).toFixed(0)} ms over ${rounds} rounds`);
  console.log(`clean all ${nodes.length} nodes:          median ${median(all).toFixed(0)} ms`);
  console.log(`ratio all/one: ${ratio.toFixed(2)} (1.0 = perfectly parallel, ${nodes.length}.0 = sequential)`);
} finally {
  await s.stop();
}
