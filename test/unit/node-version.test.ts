import { describe, expect, it, vi } from 'vitest';
import { exitOnOldNode } from '../../src/node-version.js';

describe('exitOnOldNode (CONTRIBUTING.md "Node version")', () => {
  it('exits 1 with one clear line on Node 20, before better-sqlite3 could crash', () => {
    const exit = vi.spyOn(process, 'exit').mockImplementation(((code?: number) => {
      throw new Error(`exit ${code}`);
    }) as never);
    const lines: string[] = [];
    try {
      expect(() => exitOnOldNode('20.20.2', (l) => lines.push(l))).toThrow('exit 1');
      expect(lines).toEqual(['swarm-utils: needs Node.js 24 or newer (this is v20.20.2); see CONTRIBUTING.md, "Node version"']);
    } finally {
      exit.mockRestore();
    }
  });

  it('lets Node 24 and newer through, and the tests run on 24', () => {
    expect(() => exitOnOldNode('24.21.0', () => undefined)).not.toThrow();
    expect(() => exitOnOldNode('26.1.0', () => undefined)).not.toThrow();
    expect(process.versions.node.split('.')[0]).toBe('24');
  });
});
