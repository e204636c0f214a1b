import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { COUNT_TREE_SH, parseTreeCount } from '../../src/jobs/tree-count.js';

const count = (dir: string) => execFileSync('sh', ['-c', `${COUNT_TREE_SH}\ncount_tree "$1"`, 'sh', dir], { encoding: 'utf8' });

describe('count_tree', () => {
  it('counts non-directories and the bytes of regular files, nested, with a symlink and an empty file', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tree-'));
    fs.mkdirSync(path.join(dir, 'a/b/c'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'one'), 'x'.repeat(1000));
    fs.writeFileSync(path.join(dir, 'a/b/two'), Buffer.alloc(70_000));
    fs.writeFileSync(path.join(dir, 'a/b/c/empty'), '');
    fs.writeFileSync(path.join(dir, 'with space'), 'abc');
    fs.symlinkSync('one', path.join(dir, 'link'));
    expect(parseTreeCount(count(dir))).toEqual({ files: 5, bytes: 71_003 });
  });

  it('an empty directory counts zero', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tree-'));
    expect(parseTreeCount(count(dir))).toEqual({ files: 0, bytes: 0 });
  });

  it('a missing directory fails instead of counting zero', () => {
    expect(() => count('/nonexistent/dir')).toThrow();
  });

  it('parses only a well-formed line', () => {
    expect(parseTreeCount('noise\nswarm-utils-count files=3 bytes=12\n')).toEqual({ files: 3, bytes: 12 });
    expect(parseTreeCount('swarm-utils-count files=x bytes=12')).toBeNull();
  });
});
