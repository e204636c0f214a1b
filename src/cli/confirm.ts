/** A restore replaces a volume's content: on a terminal the operator types the service name, as in the console. */
import { createInterface } from 'node:readline';
import type { Io } from './io.js';

/** reads one line from stdin; null when stdin ends first */
function readLine(io: Io): Promise<string | null> {
  return new Promise((resolve) => {
    const rl = createInterface({ input: io.stdin, terminal: false });
    let done = false;
    const finish = (v: string | null) => {
      if (done) return;
      done = true;
      rl.close();
      resolve(v);
    };
    rl.once('line', (line) => finish(line));
    rl.once('close', () => finish(null));
  });
}

export const canAsk = (io: Io): boolean => io.stdin.isTTY === true && io.stderr.isTTY === true;

/** true when the operator typed `expected` */
export async function confirmByName(io: Io, question: string, expected: string): Promise<boolean> {
  io.stderr.write(`${question}\nType the service name (${expected}) to go on: `);
  const answer = await readLine(io);
  return answer !== null && answer.trim() === expected;
}
