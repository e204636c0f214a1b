// A real headless browser for the console's tests: Debian's chromium driven by playwright-core
// (no browser download; test/test.sh installs the chromium package when it is missing).
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';

/** screenshots a person can look at after a run (git-ignored) */
export const ARTIFACTS = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../test-artifacts/console');

export async function launchBrowser(): Promise<Browser> {
  if (!fs.existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium (bash test/test.sh does)`);
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  // playwright gives every launch a fresh, empty --user-data-dir of its own and removes it on close;
  // the flags keep Chromium off the network this machine does not have
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}
