// A throwaway certificate authority and a server certificate it signed, made with the openssl CLI
// (the test swarm needs it anyway, see test/swarm/up.sh), for tests of a self-signed S3 endpoint.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

export interface TestCa {
  dir: string;
  caCertPath: string;
  caCert: string;
  serverCertPath: string;
  serverKeyPath: string;
  serverCert: string;
  serverKey: string;
}

/** a CA and a certificate for `ip` (subjectAltName IP) signed by it, in a fresh temp dir */
export function makeTestCa(ip = '127.0.0.1'): TestCa {
  const dir = mkdtempSync(path.join(tmpdir(), 'swarm-utils-ca-'));
  const f = (name: string) => path.join(dir, name);
  const openssl = (...args: string[]) => execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-sha256', '-days', '2', '-keyout', f('ca.key'), '-out', f('ca.crt'), '-subj', '/CN=swarm-utils test S3 CA');
  openssl('req', '-newkey', 'rsa:2048', '-nodes', '-sha256', '-keyout', f('server.key'), '-out', f('server.csr'), '-subj', `/CN=${ip}`);
  writeFileSync(f('server.ext'), `subjectAltName=IP:${ip}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n`);
  openssl('x509', '-req', '-sha256', '-days', '2', '-in', f('server.csr'), '-CA', f('ca.crt'), '-CAkey', f('ca.key'), '-CAcreateserial', '-extfile', f('server.ext'), '-out', f('server.crt'));
  return {
    dir,
    caCertPath: f('ca.crt'),
    caCert: readFileSync(f('ca.crt'), 'utf8'),
    serverCertPath: f('server.crt'),
    serverKeyPath: f('server.key'),
    serverCert: readFileSync(f('server.crt'), 'utf8'),
    serverKey: readFileSync(f('server.key'), 'utf8'),
  };
}
