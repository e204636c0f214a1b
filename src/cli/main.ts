#!/usr/bin/env node
/** `swarm-utils`: the command-line client (docs/cli.md). */
import { readFileSync } from 'node:fs';
import { run } from './program.js';

const code = await run(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  stdin: process.stdin,
  env: process.env,
  readFile: (path) => readFileSync(path, 'utf8'),
});
process.exitCode = code;
