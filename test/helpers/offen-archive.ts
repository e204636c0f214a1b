// An archive written the way offen/docker-volume-backup writes one (its cmd/backup/create_archive.go and
// archive.go): filepath.WalkDir over BACKUP_SOURCES (/backup, lexical order, the root included), one
// Go archive/tar header per path from tar.FileInfoHeader with Name = the path minus the "/tmp" prefix
// of the output file (so every name starts with "/": "/backup", "/backup/<mount>", …; directories
// without a trailing slash), sockets skipped, USTAR headers (the names here are short), the
// writer closed with two zero blocks and no record padding; then BACKUP_COMPRESSION: gz (pgzip, a
// plain gzip stream), zst (zstd) or none.
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';

export type OffenCompression = 'gz' | 'zst' | 'none';

/** offen's `{{ .Extension }}` for a compression */
export const offenExtension = (c: OffenCompression): string => (c === 'none' ? 'tar' : `tar.${c}`);

/** offen's default BACKUP_FILENAME, `backup-%Y-%m-%dT%H-%M-%S.{{ .Extension }}`, at `at` (UTC, offen's default TZ) */
export function offenFilename(at: Date, c: OffenCompression): string {
  const p = (n: number) => String(n).padStart(2, '0');
  const stamp = `${at.getUTCFullYear()}-${p(at.getUTCMonth() + 1)}-${p(at.getUTCDate())}T${p(at.getUTCHours())}-${p(at.getUTCMinutes())}-${p(at.getUTCSeconds())}`;
  return `backup-${stamp}.${offenExtension(c)}`;
}

function octal(n: number, width: number): string {
  // Go's formatOctal: zero-padded digits and a NUL in the last byte
  return `${n.toString(8).padStart(width - 1, '0')}\0`;
}

function header(name: string, st: fs.Stats, type: '0' | '2' | '5', link = ''): Buffer {
  const h = Buffer.alloc(512);
  let prefix = '';
  let base = name;
  if (Buffer.byteLength(name) > 100) {
    const cut = name.lastIndexOf('/', 155);
    prefix = name.slice(0, cut);
    base = name.slice(cut + 1);
  }
  h.write(base, 0, 100);
  h.write(octal(st.mode & 0o7777, 8), 100);
  h.write(octal(st.uid, 8), 108);
  h.write(octal(st.gid, 8), 116);
  h.write(octal(type === '0' ? st.size : 0, 12), 124);
  h.write(octal(Math.floor(st.mtimeMs / 1000), 12), 136);
  h.write(type, 156);
  h.write(link, 157, 100);
  h.write('ustar\u000000', 257);
  h.write(prefix, 345, 155);
  h.write('        ', 148);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
  return h;
}

/** the tar offen writes of /backup holding `tree` mounted at /backup/<mount> */
export function offenTar(tree: string, mount: string): Buffer {
  const parts: Buffer[] = [];
  const add = (hostPath: string, name: string) => {
    const st = fs.lstatSync(hostPath);
    if (st.isSocket()) return;
    if (st.isSymbolicLink()) return void parts.push(header(name, st, '2', fs.readlinkSync(hostPath)));
    if (st.isDirectory()) {
      parts.push(header(name, st, '5'));
      for (const e of fs.readdirSync(hostPath).sort()) add(path.join(hostPath, e), `${name}/${e}`);
      return;
    }
    parts.push(header(name, st, '0'));
    const data = fs.readFileSync(hostPath);
    parts.push(data, Buffer.alloc((512 - (data.length % 512)) % 512));
  };
  // "/backup" itself first, as WalkDir yields the root: made from the tree's own directory entry
  parts.push(header('/backup', fs.lstatSync(tree), '5'));
  add(tree, `/backup/${mount}`);
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

export function offenArchive(tree: string, mount: string, c: OffenCompression): Buffer {
  const tar = offenTar(tree, mount);
  if (c === 'gz') return zlib.gzipSync(tar, { level: 5 });
  if (c === 'zst') return zlib.zstdCompressSync(tar);
  return tar;
}
