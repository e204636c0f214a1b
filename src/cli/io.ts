/** What the CLI reads and writes, so tests run it in-process with their own streams. */
import type { Readable } from 'node:stream';

export interface Out {
  write(text: string): void;
  isTTY?: boolean;
}

export interface Io {
  stdout: Out;
  stderr: Out;
  stdin: Readable & { isTTY?: boolean };
  env: Record<string, string | undefined>;
  readFile: (path: string) => string;
  /** how often a followed job is asked for (ms) */
  pollMs?: number;
}

/** an Out that replaces every occurrence of `secret` (belt and braces: the API never echoes a token) */
export function redacting(out: Out, secret: string | null): Out {
  if (!secret || secret.length < 4) return out;
  return {
    isTTY: out.isTTY,
    write: (text: string) => out.write(text.split(secret).join('[redacted]')),
  };
}
