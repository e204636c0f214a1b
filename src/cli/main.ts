#!/usr/bin/env node
/** `swarm-utils`: the command-line client (docs/cli.md). */
import { readFileSync } from 'node:fs';
import { run } from './program.js';

const args = process.argv.slice(2);
// a token given with --token is taken out of the process list as soon as possible (it was there from
// the start, and stays in the shell history: the client warns about both)
if (args.some((a) => a === '--token' || a.startsWith('--token='))) {
  process.title = ['swarm-utils', ...args.map((a, i) => (args[i - 1] === '--token' ? '[hidden]' : a.startsWith('--token=') ? '--token=[hidden]' : a))].join(' ');
}

const code = await run(args, {
  stdout: process.stdout,
  stderr: process.stderr,
  stdin: process.stdin,
  env: process.env,
  readFile: (path) => readFileSync(path, 'utf8'),
});
process.exitCode = code;
