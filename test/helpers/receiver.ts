import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Received {
  at: number;
  method: string;
  path: string;
  headers: http.IncomingHttpHeaders;
  text: string;
  json: any;
}

/** a real HTTP server that records the notifications it gets; it can go down (connection refused) and come back on its port */
export interface Receiver {
  /** base URL, e.g. http://127.0.0.1:41234 */
  url: string;
  port: number;
  /** requests answered with `status` (not those refused while down) */
  received: Received[];
  /** what it answers; a 5xx makes the sender retry */
  status: number;
  down(): Promise<void>;
  up(): Promise<void>;
  /** resolves when `n` requests were received, rejects after `ms` */
  waitFor(n: number, ms: number): Promise<Received[]>;
  close(): Promise<void>;
}

export async function startReceiver(host = '127.0.0.1'): Promise<Receiver> {
  let server: http.Server | null = null;
  let port = 0;
  const r: Receiver = {
    url: '',
    port: 0,
    received: [],
    status: 200,
    async down() {
      if (!server) return;
      const s = server;
      server = null;
      await new Promise<void>((resolve) => {
        s.close(() => resolve());
        s.closeAllConnections();
      });
    },
    async up() {
      if (server) return;
      const s = http.createServer((req, res) => {
        const chunks: Buffer[] = [];
        req.on('data', (c: Buffer) => chunks.push(c));
        req.on('end', () => {
          const text = Buffer.concat(chunks).toString();
          let json: unknown = null;
          try {
            json = JSON.parse(text);
          } catch {
            /* not JSON: kept as text */
          }
          r.received.push({ at: Date.now(), method: req.method ?? '', path: req.url ?? '', headers: req.headers, text, json });
          res.writeHead(r.status, { 'content-type': 'text/plain' }).end(r.status < 300 ? 'ok' : 'unavailable');
        });
      });
      await new Promise<void>((resolve, reject) => {
        s.once('error', reject);
        s.listen(port, host, () => resolve());
      });
      server = s;
      port = (s.address() as AddressInfo).port;
      r.port = port;
      r.url = `http://${host}:${port}`;
    },
    async waitFor(n, ms) {
      const end = Date.now() + ms;
      while (r.received.length < n) {
        if (Date.now() > end) throw new Error(`receiver: ${r.received.length} of ${n} requests after ${ms} ms`);
        await new Promise((res) => setTimeout(res, 50));
      }
      return r.received;
    },
    close: () => r.down(),
  };
  await r.up();
  return r;
}
