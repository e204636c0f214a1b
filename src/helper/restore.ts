/**
 * `node dist/helper/restore.js`: the fetch of restore, drill and migrate, run on a node by the swarm-utils
 * image itself (README "Restore": encrypted archives, private CA). It downloads one archive through a
 * presigned URL, decrypts it (GPG or age passphrase), decompresses it (gzip, zstd or none, told apart by
 * their magic bytes) and unpacks it into `$SU_WORK/new`, then counts `$SU_WORK/new/backup/$SU_VOLUME`.
 *
 * It speaks the protocol of FETCH_SH (src/jobs/restore/scripts.ts), so the job cannot tell the two apart:
 * the same state file (downloading → unpacking → unpacked), the same exit codes, the same
 * `swarm-utils-phase` / `swarm-utils-error` / `swarm-utils-count` lines. Everything secret comes from
 * files (Docker secrets of the job): the URL ($SU_URL_FILE), the passphrase ($SU_PASS_FILE), the CA
 * ($SU_CA_FILE); nothing secret is printed. On any failure the work directory is removed: the volume
 * beside it is untouched.
 */
import { createReadStream, createWriteStream, existsSync, promises as fsp, readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import { PassThrough, Readable, Transform, type Duplex } from 'node:stream';
import { rootCertificates } from 'node:tls';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';

/** FETCH_EXIT of scripts.ts */
const EXIT = { download: 10, broken: 11, layout: 13, other: 14 } as const;

class Fail extends Error {
  constructor(
    readonly code: number,
    readonly kind: string,
    message: string,
  ) {
    super(message);
  }
}

const env = (name: string): string => process.env[name] ?? '';
const W = env('SU_WORK');
const oneLine = (text: string): string => text.replace(/\s+/g, ' ').trim().slice(0, 600);
const messageOf = (e: unknown): string => oneLine(e instanceof Error ? e.message : String(e));

async function state(): Promise<string> {
  return (await fsp.readFile(path.join(W, 'state'), 'utf8').catch(() => '')).trim();
}

/** by rename, as setstate() of the shell helpers: a reader sees the old state or the new one */
async function setState(s: string): Promise<void> {
  await fsp.writeFile(path.join(W, 'state.new'), `${s}\n`);
  await fsp.rename(path.join(W, 'state.new'), path.join(W, 'state'));
}

/** count_tree (tree-count.ts): entries that are not directories; bytes of the regular files */
async function countTree(dir: string): Promise<{ files: number; bytes: number }> {
  let files = 0;
  let bytes = 0;
  const walk = async (d: string): Promise<void> => {
    for (const entry of await fsp.readdir(d, { withFileTypes: true })) {
      const p = path.join(d, entry.name);
      if (entry.isDirectory()) {
        await walk(p);
        continue;
      }
      files++;
      if (entry.isFile()) bytes += (await fsp.lstat(p)).size;
    }
  };
  await walk(dir);
  return { files, bytes };
}

function download(url: string, to: string, ca: string | undefined): Promise<void> {
  const client = url.startsWith('https:') ? https : http;
  return new Promise((resolve, reject) => {
    // the CA is added to Node's own roots, as swarm-utils' S3 client does
    const opts = ca ? { ca: [...rootCertificates, ca] } : {};
    const req = client.get(url, { ...opts, timeout: 60_000 }, (res) => {
      if (res.statusCode !== 200) {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c.slice(0, 400)));
        res.on('end', () => reject(new Fail(EXIT.download, 'download', `HTTP ${res.statusCode}: ${oneLine(body.replace(/<[^>]+>/g, ' ')).slice(0, 200)}`)));
        return;
      }
      pipeline(res, createWriteStream(to)).then(resolve, (e: unknown) => reject(new Fail(EXIT.download, 'download', messageOf(e))));
    });
    req.on('timeout', () => req.destroy(new Error('no data for 60 s')));
    // the URL holds a credential (its query string): only the error's code and message are kept, never the URL
    req.on('error', (e: NodeJS.ErrnoException) => reject(new Fail(EXIT.download, 'download', oneLine(`${e.code ?? ''} ${e.message}`))));
  });
}

/** the first bytes after decryption say the compression: gzip 1f 8b, zstd 28 b5 2f fd, else a plain tar */
function decompressor(): Transform {
  let inner: Duplex | null = null;
  let head = Buffer.alloc(0);
  const out = new Transform({
    transform(chunk: Buffer, _enc, done) {
      if (inner) return void (inner.write(chunk) ? done() : inner.once('drain', done));
      head = Buffer.concat([head, chunk]);
      if (head.length < 4) return done();
      inner = pick(head);
      inner.on('data', (c: Buffer) => out.push(c));
      inner.on('error', (e) => out.destroy(new Fail(EXIT.broken, 'unpack', `the archive is truncated or corrupt: ${messageOf(e)}`)));
      inner.write(head) ? done() : inner.once('drain', done);
    },
    flush(done) {
      if (!inner) {
        if (!head.length) return done(new Fail(EXIT.broken, 'unpack', 'the archive is empty'));
        inner = pick(head);
        inner.on('data', (c: Buffer) => out.push(c));
        inner.write(head);
      }
      inner.once('end', () => done());
      inner.once('error', (e) => done(new Fail(EXIT.broken, 'unpack', `the archive is truncated or corrupt: ${messageOf(e)}`)));
      inner.end();
    },
  });
  return out;
}

function pick(head: Buffer): Duplex {
  if (head[0] === 0x1f && head[1] === 0x8b) return zlib.createGunzip();
  if (head.readUInt32LE(0) === 0xfd2fb528) return zlib.createZstdDecompress();
  return new Transform({ transform: (c, _e, done) => done(null, c) });
}

/** the decrypted bytes of the download as a Node stream; a wrong passphrase fails here, before anything is unpacked */
async function decrypted(file: string): Promise<Readable> {
  const how = env('SU_DECRYPT');
  if (!how) return createReadStream(file);
  const passphrase = readFileSync(env('SU_PASS_FILE'), 'utf8');
  const web = Readable.toWeb(createReadStream(file)) as unknown as ReadableStream<Uint8Array>;
  try {
    if (how === 'gpg') {
      const openpgp = await import('openpgp');
      const message = await openpgp.readMessage({ binaryMessage: web });
      // streamed: the MDC is checked at the end of the stream, which then fails the unpack; nothing
      // reaches the volume before the whole archive has been read and checked
      const out = await openpgp.decrypt({ message, passwords: [passphrase], format: 'binary', config: { allowUnauthenticatedStream: true } });
      return Readable.fromWeb(out.data as unknown as import('node:stream/web').ReadableStream<Uint8Array>);
    }
    if (how === 'age') {
      const { Decrypter } = await import('age-encryption');
      const d = new Decrypter();
      d.addPassphrase(passphrase);
      const out = await d.decrypt(web);
      return Readable.fromWeb(out as unknown as import('node:stream/web').ReadableStream<Uint8Array>);
    }
  } catch (e) {
    throw new Fail(EXIT.broken, 'decrypt', `could not decrypt the archive (${how}): ${messageOf(e)}`);
  }
  throw new Fail(EXIT.other, 'other', `unknown encryption ${how}`);
}

async function unpack(file: string, into: string): Promise<void> {
  const tar = await import('tar');
  const decrypting = await decrypted(file);
  // an error of the decryption (a failed MDC, a bad age chunk) is told from one of the unpack by its origin
  const source = new PassThrough();
  decrypting.on('error', (e) => source.destroy(env('SU_DECRYPT') ? new Fail(EXIT.broken, 'decrypt', `could not decrypt the archive (${env('SU_DECRYPT')}): ${messageOf(e)}`) : e));
  decrypting.pipe(source);
  const problems: string[] = [];
  // chmod with no umask: the modes of the archive, as `tar x` run as root keeps them. Not strict: offen's
  // names start with "/" (stripped, as tar does: TAR_ENTRY_INFO); every other warning fails the unpack
  const extract = tar.x({
    cwd: into,
    chmod: true,
    processUmask: 0,
    preserveOwner: process.getuid?.() === 0,
    onwarn: (code: string, message: string | Error) => {
      if (code !== 'TAR_ENTRY_INFO') problems.push(`${code}: ${messageOf(message)}`);
    },
  });
  try {
    await pipeline(source, decompressor(), extract as unknown as NodeJS.WritableStream);
  } catch (e) {
    if (e instanceof Fail) throw e;
    throw new Fail(EXIT.broken, 'unpack', `the archive is truncated or corrupt: ${messageOf(e)}`);
  }
  if (problems.length) throw new Fail(EXIT.broken, 'unpack', `the archive is truncated or corrupt: ${problems.slice(0, 3).join('; ')}`);
}

/**
 * offen names the directory of a volume after its mount (`/backup/<name>`), which need not be the volume's
 * name: an archive with one directory under backup/ gives that one, renamed to what the swap expects.
 */
async function adoptOnlyDir(tree: string): Promise<void> {
  const dirs = (await fsp.readdir(path.dirname(tree), { withFileTypes: true }).catch(() => [])).filter((e) => e.isDirectory());
  if (dirs.length !== 1) return;
  console.log(`swarm-utils-phase using backup/${dirs[0]!.name}`);
  await fsp.rename(path.join(path.dirname(tree), dirs[0]!.name), tree);
}

async function fetchArchive(): Promise<void> {
  const s = await state();
  if (['unpacked', 'out', 'in', 'done'].includes(s)) {
    console.log('swarm-utils-phase already-unpacked');
    process.stdout.write(await fsp.readFile(path.join(W, 'count'), 'utf8'));
    return;
  }
  await fsp.rm(W, { recursive: true, force: true });
  await fsp.mkdir(path.join(W, 'new'), { recursive: true }).catch((e: unknown) => {
    throw new Fail(EXIT.other, 'other', `cannot create the work directory ${W}: ${messageOf(e)}`);
  });
  const archive = path.join(W, 'archive');
  await setState('downloading');
  console.log('swarm-utils-phase download');
  const ca = env('SU_CA_FILE') && existsSync(env('SU_CA_FILE')) ? readFileSync(env('SU_CA_FILE'), 'utf8') : undefined;
  await download(readFileSync(env('SU_URL_FILE'), 'utf8').trim(), archive, ca);
  const size = (await fsp.stat(archive)).size;
  if (size === 0) throw new Fail(EXIT.download, 'download', 'the object is empty');
  console.log(`swarm-utils-phase downloaded ${size} bytes`);
  await setState('unpacking');
  console.log('swarm-utils-phase unpack');
  await unpack(archive, path.join(W, 'new'));
  const tree = path.join(W, 'new', 'backup', env('SU_VOLUME'));
  if (!existsSync(tree) && env('SU_ANY_DIR')) await adoptOnlyDir(tree);
  if (!existsSync(tree)) {
    const holds = (await fsp.readdir(path.join(W, 'new')).catch(() => [])).slice(0, 5).join(' ');
    throw new Fail(EXIT.layout, 'layout', `the archive holds no backup/${env('SU_VOLUME')}/ directory (it holds: ${holds})`);
  }
  await fsp.rm(archive, { force: true });
  const count = await countTree(tree);
  const line = `swarm-utils-count files=${count.files} bytes=${count.bytes}\n`;
  await fsp.writeFile(path.join(W, 'count'), line);
  await setState('unpacked');
  console.log('swarm-utils-phase unpacked');
  process.stdout.write(line);
}

fetchArchive().then(
  () => process.exit(0),
  async (e: unknown) => {
    const f = e instanceof Fail ? e : new Fail(EXIT.other, 'other', messageOf(e));
    console.log(`swarm-utils-error ${f.kind} ${f.message}`);
    await fsp.rm(W, { recursive: true, force: true }).catch(() => undefined);
    process.exit(f.code);
  },
);
