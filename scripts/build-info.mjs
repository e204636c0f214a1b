#!/usr/bin/env node
// node scripts/build-info.mjs [VERSION] [REVISION] > build-info.json
// What `docker build --build-arg VERSION=… --build-arg REVISION=…` stamps into the image (Dockerfile):
// src/version.ts reads it beside package.json; GET /healthz and the first log line report it.
// VERSION defaults to package.json's, REVISION (the git commit) to none.
import { readFileSync } from 'node:fs';

const [given = '', revision = ''] = process.argv.slice(2);
const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
const version = given.trim().replace(/^v(?=\d)/, '') || pkg.version;
if (!/^\d+\.\d+\.\d+([-+][0-9A-Za-z.+-]+)?$/.test(version)) {
  console.error(`build-info: "${version}" is not a semantic version such as 1.0.0 or 1.1.0-rc.1`);
  process.exit(2);
}
process.stdout.write(`${JSON.stringify({ version, revision: revision.trim() || null })}\n`);
