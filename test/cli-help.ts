/**
 * Writes the `--help` output of swarm-utils and of every verb into docs/cli.md, between
 * `<!-- help:start -->` and `<!-- help:end -->`: `bash test/node.sh npx tsx test/cli-help.ts`.
 * test/unit/cli.test.ts fails when the page and the real output differ.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { helpTexts } from '../src/cli/program.js';

const file = fileURLToPath(new URL('../docs/cli.md', import.meta.url));
const quiet = { write: () => undefined };
const texts = await helpTexts({ stdout: quiet, stderr: quiet, stdin: Readable.from([]), env: {}, readFile: () => '' });
const blocks = [...texts].map(([cmd, help]) => `\`\`\`text\n$ ${cmd} --help\n${help}\`\`\``).join('\n\n');
const doc = readFileSync(file, 'utf8');
const next = doc.replace(/<!-- help:start -->[\s\S]*<!-- help:end -->/, `<!-- help:start -->\n${blocks}\n<!-- help:end -->`);
if (next === doc && !doc.includes('<!-- help:start -->')) throw new Error('docs/cli.md has no <!-- help:start --> … <!-- help:end --> region');
writeFileSync(file, next);
console.log(`docs/cli.md: ${texts.size} help blocks`);
