#!/usr/bin/node
// Stand-in for offen/docker-volume-backup (production: offen/docker-volume-backup:v2.48.2),
// which cannot be pulled on the test machine. It honours the part of offen's contract that
// swarm-utils uses, and nothing more:
//   - run once as `backup` (swarm: Command ["backup"]), volumes mounted at /backup/<name>:ro;
//   - a gzip tarball of /backup whose entries are backup/<name>/…;
//   - uploaded to S3: AWS_S3_BUCKET_NAME, AWS_ENDPOINT (host:port), AWS_ENDPOINT_PROTO
//     (http|https, default https), AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, optional
//     AWS_S3_PATH (key prefix), AWS_ENDPOINT_INSECURE=true (skip TLS verification),
//     AWS_ENDPOINT_CA_CERT (a PEM certificate, or the path of one, trusted for https; offen
//     takes the first certificate and trusts only it);
//   - requests signed for the region an AWS endpoint names (s3.<region>.amazonaws.com), as
//     offen's client (minio-go) does, else AWS_REGION / AWS_DEFAULT_REGION, else us-east-1;
//   - object key <AWS_S3_PATH>/<BACKUP_FILENAME>; BACKUP_FILENAME is used literally (offen
//     expands strftime `%` sequences: the project only uses names without `%`);
//   - every variable may instead be given as <NAME>_FILE, a path whose content is the value, taken
//     raw (a trailing newline stays); an unreadable file, or NAME and NAME_FILE both set, leave it
//     unset (offen's cmd/backup/config_provider.go). swarm-utils passes its secrets this way;
//   - GPG_PASSPHRASE: the tarball is encrypted as offen does (go-crypto's openpgp.SymmetricallyEncrypt
//     with its defaults: an OpenPGP message of a symmetric-key session key packet, v4, AES-128, iterated
//     and salted SHA-256 S2K, and a SEIPD v1 packet with MDC holding a binary literal data packet named
//     after the file) and uploaded as <BACKUP_FILENAME>.gpg; AGE_PASSPHRASE: age v1 with an scrypt
//     recipient (work factor 18, as age.NewScryptRecipient), uploaded as <BACKUP_FILENAME>.age;
//     both set: an error, as offen says;
//   - exit code 0 on success, 1 with a message on stderr on any failure.
// Plain Node (http, https, crypto, fs, child_process): the image has no npm packages.
import { spawnSync } from 'node:child_process';
import { createCipheriv, createHash, createHmac, hkdfSync, randomBytes, scryptSync } from 'node:crypto';
import { createReadStream, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';

const log = (msg) => console.log(`backup: ${msg}`);

class BackupError extends Error {}

// offen's lookup: NAME, or the raw content of the file NAME_FILE names; both set counts as unset
function lookup(name) {
  const value = process.env[name];
  const file = process.env[`${name}_FILE`];
  if (value !== undefined && file !== undefined) return undefined;
  if (file === undefined) return value;
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

function required(name) {
  const value = lookup(name);
  if (!value) throw new BackupError(`environment variable ${name} (or ${name}_FILE) is required`);
  return value;
}

// offen's CertDecoder: a readable file's content, else the value itself; its first PEM certificate
function caCert(value) {
  if (!value) return undefined;
  let content = value;
  try {
    content = readFileSync(value, 'utf8');
  } catch {
    /* not a path: the PEM itself */
  }
  const pem = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/.exec(content);
  if (!pem) throw new BackupError('AWS_ENDPOINT_CA_CERT holds no PEM certificate');
  return `${pem[0]}\n`;
}

// minio-go's s3utils.GetRegionFromURL, for the endpoints the project documents
function regionOf(endpoint) {
  const m = /^s3[.-](?:dualstack\.)?([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?(?::\d+)?$/i.exec(endpoint);
  return m && m[1] !== 'external-1' ? m[1].toLowerCase() : null;
}

function config() {
  const env = new Proxy({}, { get: (_, name) => (typeof name === 'string' ? lookup(name) : undefined) });
  const proto = (env.AWS_ENDPOINT_PROTO || 'https').toLowerCase();
  if (proto !== 'http' && proto !== 'https') {
    throw new BackupError(`AWS_ENDPOINT_PROTO must be http or https, not "${proto}"`);
  }
  const stamp = new Date().toISOString().replace(/\..*$/, '').replace(/:/g, '-');
  const filename = env.BACKUP_FILENAME || `backup-${stamp}.tar.gz`;
  if (filename.includes('/')) throw new BackupError(`BACKUP_FILENAME must not contain "/": ${filename}`);
  const prefix = (env.AWS_S3_PATH || '').split('/').filter(Boolean).join('/');
  const endpoint = required('AWS_ENDPOINT').replace(/^https?:\/\//, '').replace(/\/+$/, '');
  return {
    sources: env.BACKUP_SOURCES || '/backup',
    filename,
    bucket: required('AWS_S3_BUCKET_NAME'),
    endpoint,
    proto,
    insecure: env.AWS_ENDPOINT_INSECURE === 'true',
    ca: caCert(env.AWS_ENDPOINT_CA_CERT),
    accessKey: required('AWS_ACCESS_KEY_ID'),
    secretKey: required('AWS_SECRET_ACCESS_KEY'),
    region: regionOf(endpoint) || env.AWS_DEFAULT_REGION || env.AWS_REGION || 'us-east-1',
    key: prefix ? `${prefix}/${filename}` : filename,
  };
}

// tar czf <file> -C <parent of sources> <basename of sources>: entries are backup/<volume>/…
function archive(sources, file) {
  const abs = path.resolve(sources);
  try {
    if (!statSync(abs).isDirectory()) throw new Error('not a directory');
  } catch (err) {
    throw new BackupError(`nothing to back up: ${abs} is not a readable directory (${err.message})`);
  }
  const res = spawnSync('tar', ['czf', file, '-C', path.dirname(abs), path.basename(abs)], {
    encoding: 'utf8',
  });
  if (res.error) throw new BackupError(`tar failed to start: ${res.error.message}`);
  if (res.status !== 0) throw new BackupError(`tar exited with ${res.status}: ${res.stderr.trim()}`);
  return statSync(file).size;
}

function sha256File(file) {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    createReadStream(file)
      .on('data', (chunk) => hash.update(chunk))
      .on('error', reject)
      .on('end', () => resolve(hash.digest('hex')));
  });
}

const sha256 = (data) => createHash('sha256').update(data, 'utf8').digest('hex');
const hmac = (key, data) => createHmac('sha256', key).update(data, 'utf8').digest();

// RFC 3986 encoding as AWS wants it in a canonical URI (each path segment, `/` kept)
const encodeSegment = (s) =>
  encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

// AWS Signature Version 4 for a path-style S3 request without a query string
function sign({ method, host, uri, payloadHash, accessKey, secretKey, region, extraHeaders }) {
  const amzDate = new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');
  const date = amzDate.slice(0, 8);
  const headers = {
    ...extraHeaders,
    host,
    'x-amz-content-sha256': payloadHash,
    'x-amz-date': amzDate,
  };
  const names = Object.keys(headers).map((h) => h.toLowerCase()).sort();
  const lower = Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), String(v)]));
  const canonicalHeaders = names.map((h) => `${h}:${lower[h].trim().replace(/\s+/g, ' ')}\n`).join('');
  const signedHeaders = names.join(';');
  const canonicalRequest = [method, uri, '', canonicalHeaders, signedHeaders, payloadHash].join('\n');
  const scope = `${date}/${region}/s3/aws4_request`;
  const stringToSign = ['AWS4-HMAC-SHA256', amzDate, scope, sha256(canonicalRequest)].join('\n');
  const kDate = hmac(`AWS4${secretKey}`, date);
  const kSigning = hmac(hmac(hmac(kDate, region), 's3'), 'aws4_request');
  const signature = createHmac('sha256', kSigning).update(stringToSign, 'utf8').digest('hex');
  return {
    ...headers,
    authorization: `AWS4-HMAC-SHA256 Credential=${accessKey}/${scope}, SignedHeaders=${signedHeaders}, Signature=${signature}`,
  };
}

async function upload(cfg, file, size) {
  const uri = `/${[cfg.bucket, ...cfg.key.split('/')].map(encodeSegment).join('/')}`;
  const url = `${cfg.proto}://${cfg.endpoint}${uri}`;
  const headers = sign({
    method: 'PUT',
    host: cfg.endpoint,
    uri,
    payloadHash: await sha256File(file),
    accessKey: cfg.accessKey,
    secretKey: cfg.secretKey,
    region: cfg.region,
    extraHeaders: { 'content-length': size, 'content-type': 'application/gzip' },
  });
  const client = cfg.proto === 'https' ? https : http;
  await new Promise((resolve, reject) => {
    const req = client.request(
      url,
      { method: 'PUT', headers, timeout: 60_000, rejectUnauthorized: !cfg.insecure, ...(cfg.ca ? { ca: cfg.ca } : {}) },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk) => (body += chunk));
        res.on('end', () => {
          if (res.statusCode >= 200 && res.statusCode < 300) resolve();
          else reject(new BackupError(`upload to ${url} answered HTTP ${res.statusCode}: ${body.trim().slice(0, 500)}`));
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', (err) => reject(new BackupError(`upload to ${url} failed: ${err.code || ''} ${err.message}`.trim())));
    createReadStream(file).on('error', (err) => req.destroy(err)).pipe(req);
  });
  return url;
}

// ---- encryption the way offen does it (cmd/backup/encrypt_archive.go) ----

// an OpenPGP packet with a new-format header and a five-octet length
function packet(tag, body) {
  const len = Buffer.alloc(5);
  len[0] = 0xff;
  len.writeUInt32BE(body.length, 1);
  return Buffer.concat([Buffer.from([0xc0 | tag]), len, body]);
}

// RFC 4880: symmetric-key encrypted session key (tag 3) + symmetrically encrypted integrity protected data (tag 18)
function gpgSymmetric(plain, passphrase, name) {
  const salt = randomBytes(8);
  const coded = 0x60; // 65536 octets hashed
  const count = (16 + (coded & 15)) << ((coded >> 4) + 6);
  const unit = Buffer.concat([salt, Buffer.from(passphrase, 'utf8')]);
  const hash = createHash('sha256');
  for (let done = 0; done < count; done += unit.length) hash.update(unit.subarray(0, Math.min(unit.length, count - done)));
  const key = hash.digest().subarray(0, 16);
  const skesk = packet(3, Buffer.concat([Buffer.from([4, 7, 3, 8]), salt, Buffer.from([coded])]));
  const file = Buffer.from(name, 'utf8');
  const date = Buffer.alloc(4);
  date.writeUInt32BE(Math.floor(Date.now() / 1000));
  const literal = packet(11, Buffer.concat([Buffer.from(['b'.charCodeAt(0), file.length]), file, date, plain]));
  const prefix = randomBytes(16);
  const head = Buffer.concat([prefix, prefix.subarray(14, 16)]);
  const mdc = createHash('sha1').update(Buffer.concat([head, literal, Buffer.from([0xd3, 0x14])])).digest();
  const clear = Buffer.concat([head, literal, Buffer.from([0xd3, 0x14]), mdc]);
  const cipher = createCipheriv('aes-128-cfb', key, Buffer.alloc(16));
  const body = Buffer.concat([cipher.update(clear), cipher.final()]);
  return Buffer.concat([skesk, packet(18, Buffer.concat([Buffer.from([1]), body]))]);
}

const b64 = (buf) => buf.toString('base64').replace(/=+$/, '');
const chacha = (key, nonce, data) => {
  const c = createCipheriv('chacha20-poly1305', key, nonce, { authTagLength: 16 });
  return Buffer.concat([c.update(data), c.final(), c.getAuthTag()]);
};

// age-encryption.org/v1 with one scrypt stanza and the STREAM payload (64 KiB chunks)
function ageScrypt(plain, passphrase, logN = 18) {
  const fileKey = randomBytes(16);
  const salt = randomBytes(16);
  const wrapKey = scryptSync(Buffer.from(passphrase, 'utf8'), Buffer.concat([Buffer.from('age-encryption.org/v1/scrypt'), salt]), 32, {
    N: 2 ** logN,
    r: 8,
    p: 1,
    maxmem: 300 * 1024 * 1024,
  });
  const body = b64(chacha(wrapKey, Buffer.alloc(12), fileKey));
  const lines = body.match(/.{1,64}/g) ?? [''];
  if ((lines.at(-1) ?? '').length === 64) lines.push('');
  const header = `age-encryption.org/v1\n-> scrypt ${b64(salt)} ${logN}\n${lines.join('\n')}\n---`;
  const macKey = Buffer.from(hkdfSync('sha256', fileKey, Buffer.alloc(0), 'header', 32));
  const mac = b64(createHmac('sha256', macKey).update(header).digest());
  const nonce = randomBytes(16);
  const payloadKey = Buffer.from(hkdfSync('sha256', fileKey, nonce, 'payload', 32));
  const chunks = [];
  const size = 64 * 1024;
  const n = Math.max(1, Math.ceil(plain.length / size));
  for (let i = 0; i < n; i++) {
    const iv = Buffer.alloc(12);
    iv.writeUIntBE(i, 5, 6);
    if (i === n - 1) iv[11] = 1;
    chunks.push(chacha(payloadKey, iv, plain.subarray(i * size, (i + 1) * size)));
  }
  return Buffer.concat([Buffer.from(`${header} ${mac}\n`), nonce, ...chunks]);
}

// offen: at most one method; the encrypted file is <file>.gpg or <file>.age
function encrypt(file) {
  const gpg = lookup('GPG_PASSPHRASE');
  const age = lookup('AGE_PASSPHRASE');
  if (gpg && age) throw new BackupError('error in selecting archive encryption method: expected 0 or 1 to be configured, 2 methods are configured');
  if (!gpg && !age) return file;
  const plain = readFileSync(file);
  const out = gpg ? `${file}.gpg` : `${file}.age`;
  writeFileSync(out, gpg ? gpgSymmetric(plain, gpg, path.basename(file)) : ageScrypt(plain, age));
  log(`encrypted ${path.basename(file)} with ${gpg ? 'gpg' : 'age'}, saving as ${path.basename(out)}`);
  return out;
}

async function main() {
  const cfg = config();
  const dir = mkdtempSync(path.join(tmpdir(), 'backup-'));
  const file = path.join(dir, cfg.filename);
  try {
    // which passphrase reached it (its length, never the value)
    for (const name of ['GPG_PASSPHRASE', 'AGE_PASSPHRASE']) {
      const value = lookup(name);
      if (value !== undefined) log(`${name} is set (${value.length} characters)`);
    }
    log(`archiving ${cfg.sources} to ${cfg.filename}`);
    const size = archive(cfg.sources, file);
    log(`created ${cfg.filename} (${size} bytes)`);
    const sent = encrypt(file);
    const suffix = sent.slice(file.length);
    const target = { ...cfg, key: `${cfg.key}${suffix}` };
    const url = await upload(target, sent, statSync(sent).size);
    log(`uploaded ${cfg.filename}${suffix} to bucket "${cfg.bucket}" as "${target.key}" (${url})`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main().then(
  () => log('finished successfully'),
  (err) => {
    console.error(`backup: FAILED: ${err instanceof BackupError ? err.message : err.stack || err}`);
    process.exit(1);
  },
);
