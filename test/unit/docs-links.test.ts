/**
 * Every relative link of README.md, CONTRIBUTING.md and docs/*.md points at a file that exists, and each
 * `#anchor` (on its own page or another) at a heading of that page, slugged as GitHub does.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const PAGES = ['README.md', 'CONTRIBUTING.md', ...readdirSync(path.join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];

/** the text outside fenced code blocks and inline code */
function prose(md: string): string {
  return md.replace(/^(```|~~~)[^\n]*\n[\s\S]*?^\1[^\n]*$/gm, '').replace(/`[^`\n]*`/g, '');
}

/** GitHub's heading slug: lower case, punctuation but `-` and `_` dropped, spaces to `-`, repeats numbered */
export function anchors(md: string): Set<string> {
  const out = new Set<string>();
  const seen = new Map<string, number>();
  const text = md.replace(/^(```|~~~)[^\n]*\n[\s\S]*?^\1[^\n]*$/gm, '');
  for (const m of text.matchAll(/^#{1,6}[ \t]+(.+?)[ \t#]*$/gm)) {
    const plain = m[1]!.replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1').replace(/<[^>]+>/g, '');
    const base = plain.toLowerCase().replace(/[^\p{L}\p{N}\p{M}\p{Pc} -]/gu, '').replace(/ /g, '-');
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    out.add(n ? `${base}-${n}` : base);
  }
  return out;
}

function links(md: string): string[] {
  return [...prose(md).matchAll(/\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)].map((m) => m[1]!);
}

describe('anchors (GitHub slug rules)', () => {
  it('slugs headings as GitHub does', () => {
    const a = anchors('# A\n## Staging: the downtime of a stop=true backup\n## Listing the archives: GET /backups\n## Restore drills, restore and migration\n## Try it\n## Try it\n```\n# not a heading\n```\n');
    expect([...a]).toEqual(['a', 'staging-the-downtime-of-a-stoptrue-backup', 'listing-the-archives-get-backups', 'restore-drills-restore-and-migration', 'try-it', 'try-it-1']);
  });
});

describe('documentation links', () => {
  it.each(PAGES)('%s: every relative link and anchor resolves', (page) => {
    const md = readFileSync(path.join(ROOT, page), 'utf8');
    const broken: string[] = [];
    for (const link of links(md)) {
      if (/^[a-z][a-z0-9+.-]*:/i.test(link)) continue; // http:, https:, mailto:
      const [file, anchor] = link.split('#', 2) as [string, string | undefined];
      const target = file ? path.normalize(path.join(path.dirname(page), decodeURI(file))) : page;
      if (!existsSync(path.join(ROOT, target))) {
        broken.push(`${link}: no file ${target}`);
        continue;
      }
      if (anchor !== undefined && target.endsWith('.md') && !anchors(readFileSync(path.join(ROOT, target), 'utf8')).has(anchor)) {
        broken.push(`${link}: no heading #${anchor} in ${target}`);
      }
    }
    expect(broken).toEqual([]);
  });
});
