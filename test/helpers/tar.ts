// A small reader of the archives backups make (gzip + ustar/GNU tar as busybox and offen write them): every
// entry with its type, mode, owner, time, link target and content, so a test can compare an archive with the
// tree a volume held.
import zlib from 'node:zlib';
import { createHash } from 'node:crypto';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { S3 } from './testbed.js';
import { s3Client } from './leftovers.js';

export interface TarEntry {
  /** the path without a leading `./` and without a trailing `/` */
  name: string;
  type: 'file' | 'dir' | 'symlink' | 'hardlink' | 'other';
  /** permission bits, octal as `stat -c %a` prints them */
  mode: string;
  uid: number;
  gid: number;
  /** seconds */
  mtime: number;
  link: string;
  size: number;
  sha256: string | null;
}

const TYPES: Record<string, TarEntry['type']> = { '0': 'file', '\0': 'file', '5': 'dir', '2': 'symlink', '1': 'hardlink' };

export function readTar(buf: Buffer): Map<string, TarEntry> {
  const out = new Map<string, TarEntry>();
  let longName: string | null = null;
  let longLink: string | null = null;
  for (let off = 0; off + 512 <= buf.length; ) {
    const h = buf.subarray(off, off + 512);
    if (h.every((b) => b === 0)) break;
    const field = (a: number, b: number) => h.subarray(a, b).toString('utf8').replace(/\0[\s\S]*$/, '');
    const num = (a: number, b: number) => parseInt(field(a, b).trim() || '0', 8);
    const size = num(124, 136);
    const flag = String.fromCharCode(h[156]!);
    const prefix = field(257, 262) === 'ustar' ? field(345, 500) : '';
    let name = prefix ? `${prefix}/${field(0, 100)}` : field(0, 100);
    let link = field(157, 257);
    const body = buf.subarray(off + 512, off + 512 + size);
    off += 512 + Math.ceil(size / 512) * 512;
    if (flag === 'L') {
      longName = body.toString('utf8').replace(/\0[\s\S]*$/, '');
      continue;
    }
    if (flag === 'K') {
      longLink = body.toString('utf8').replace(/\0[\s\S]*$/, '');
      continue;
    }
    if (longName) [name, longName] = [longName, null];
    if (longLink) [link, longLink] = [longLink, null];
    const type = TYPES[flag] ?? 'other';
    name = name.replace(/^\.\//, '').replace(/\/$/, '');
    out.set(name, {
      name,
      type,
      mode: (num(100, 108) & 0o7777).toString(8),
      uid: num(108, 116),
      gid: num(116, 124),
      mtime: num(136, 148),
      link,
      size: type === 'file' ? size : 0,
      sha256: type === 'file' ? createHash('sha256').update(body).digest('hex') : null,
    });
  }
  // a hard link is its target's content under a second name
  for (const e of out.values()) {
    const target = e.type === 'hardlink' ? out.get(e.link.replace(/^\.\//, '')) : undefined;
    if (target) Object.assign(e, { sha256: target.sha256, size: target.size });
  }
  return out;
}

export async function downloadTar(key: string): Promise<Map<string, TarEntry>> {
  const res = await s3Client.send(new GetObjectCommand({ Bucket: S3.bucket, Key: key }));
  return readTar(zlib.gunzipSync(Buffer.from(await res.Body!.transformToByteArray())));
}

/**
 * A shell command for a container with busybox that prints the tree under `dir` in a form comparable with
 * `treeOfTar`: one line per entry `<path>|<type>|<mode>|<uid>|<gid>|<mtime or ->|<link or sha256 or ->`, sorted.
 */
export const TREE_SH = (dir: string): string =>
  `cd '${dir}' && find . | sort | while IFS= read -r f; do
    if [ -L "$f" ]; then echo "$f|symlink|-|$(stat -c %u "$f")|$(stat -c %g "$f")|-|$(readlink "$f")";
    elif [ -d "$f" ]; then echo "$f|dir|$(stat -c %a "$f")|$(stat -c %u "$f")|$(stat -c %g "$f")|$(stat -c %Y "$f")|-";
    else echo "$f|file|$(stat -c %a "$f")|$(stat -c %u "$f")|$(stat -c %g "$f")|$(stat -c %Y "$f")|$(sha256sum "$f" | cut -d' ' -f1)"; fi
  done`;

/** the same lines for the archive's entries under `root` (e.g. `backup/<volume>`) */
export function treeOfTar(entries: Map<string, TarEntry>, root: string): string[] {
  const lines: string[] = [];
  for (const e of entries.values()) {
    if (e.name !== root && !e.name.startsWith(`${root}/`)) continue;
    const rel = e.name === root ? '.' : `./${e.name.slice(root.length + 1)}`;
    if (e.type === 'symlink') lines.push(`${rel}|symlink|-|${e.uid}|${e.gid}|-|${e.link}`);
    else if (e.type === 'dir') lines.push(`${rel}|dir|${e.mode}|${e.uid}|${e.gid}|${e.mtime}|-`);
    else lines.push(`${rel}|file|${e.mode}|${e.uid}|${e.gid}|${e.mtime}|${e.sha256 ?? '-'}`);
  }
  return lines.sort();
}
