/**
 * Idle memory (README "Benchmarks"). Start-up allocates much that does not live on (modules compiled, schemas
 * built), and V8 keeps the young generation it grew for that (~15 MB) until a memory-reducing collection,
 * which a process that then waits for requests never runs on its own. One such collection once start-up is
 * over gives it back. What only backups need (the S3 client) is loaded when a backup first needs it.
 */
import v8 from 'node:v8';
import vm from 'node:vm';

type Gc = (options?: { type?: 'major' | 'minor'; execution?: 'sync' | 'async'; flavor?: 'regular' | 'last-resort' }) => void;

let gc: Gc | null = null;

/** a full, compacting collection that also shrinks the young generation; false where the runtime offers none */
export function releaseStartupMemory(): boolean {
  try {
    if (!gc) {
      // `gc` exists only in contexts made after the flag is set: a fresh one hands it over
      v8.setFlagsFromString('--expose-gc');
      gc = vm.runInNewContext('gc') as Gc;
    }
    gc({ type: 'major', execution: 'sync', flavor: 'last-resort' });
    return true;
  } catch {
    return false;
  }
}
