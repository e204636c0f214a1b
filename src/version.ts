/**
 * The running version (docs/upgrading.md): package.json's `version`, or what `docker build --build-arg
 * VERSION=… --build-arg REVISION=…` stamped into `build-info.json` beside it. Read once, synchronously, at
 * the first call: both files sit at the repository (or image) root, one level above src/ and dist/.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export interface BuildInfo {
  version: string;
  /** the source revision the image was built from, when the build said so */
  revision: string | null;
}

const ROOT = new URL('../', import.meta.url);

function readJson(name: string): Record<string, unknown> | null {
  try {
    return JSON.parse(readFileSync(fileURLToPath(new URL(name, ROOT)), 'utf8')) as Record<string, unknown>;
  } catch {
    return null;
  }
}

let cached: BuildInfo | null = null;

export function buildInfo(): BuildInfo {
  if (cached) return cached;
  const pkg = readJson('package.json');
  const stamped = readJson('build-info.json');
  const str = (v: unknown): string | null => (typeof v === 'string' && v.trim() !== '' ? v.trim() : null);
  cached = {
    version: str(stamped?.version) ?? str(pkg?.version) ?? '0.0.0-unknown',
    revision: str(stamped?.revision),
  };
  return cached;
}

export const version = (): string => buildInfo().version;
