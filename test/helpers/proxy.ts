/**
 * A pausable TCP / unix-socket proxy, to make a dependency unreachable on purpose: put it in front of the
 * Docker socket (point the server at it with DOCKER_HOST=unix://<proxy.address>, which docker-modem honours)
 * or in front of S3 (SWARM_UTILS_S3_DOMAIN=<proxy.address>), then pause, hang or refuse.
 *
 *   const p = await startProxy({ listen: { path: path.join(dir, 'docker.sock') }, target: { path: MANAGER_SOCKET } });
 *   p.pause();                       // connections stay open, nothing goes through (a daemon that never answers)
 *   p.resume();                      // what was held goes on (data of clients that gave up is dropped)
 *   p.hang(/^GET \/distribution\//); // HTTP requests whose request line matches are never forwarded
 *   p.holdOn(/^PUT \/bucket\/.*\.tar\.gz /); // connections whose request matches wait (only they) until resume()
 *   p.pauseOn(/services\/abc\/update/, { after: 1 }); // the 2nd such request pauses everything, itself included
 *   p.refuse(true);                  // new connections are closed at once, open ones cut
 *   p.requests                       // request lines seen (HTTP), in order
 *   await p.close();
 */
import fs from 'node:fs';
import net from 'node:net';

export type Endpoint = { path: string } | { host: string; port: number };

export interface Proxy {
  /** where clients connect: the socket path, or host:port */
  address: string;
  port: number | null;
  requests: string[];
  pause(): void;
  resume(): void;
  readonly paused: boolean;
  hang(pattern: RegExp | null): void;
  /** a connection whose HTTP request line matches is held (only that one) until resume(), which also ends the holding */
  holdOn(pattern: RegExp | null): void;
  pauseOn(pattern: RegExp, opts?: { after?: number; then?: () => void }): void;
  refuse(on: boolean): void;
  close(): Promise<void>;
}

const REQUEST_LINE = /^(GET|POST|PUT|DELETE|HEAD|PATCH|OPTIONS) (\S+) HTTP\/1\.[01]\r?$/gm;

interface Pipe {
  client: net.Socket;
  upstream: net.Socket;
  /** chunks held while paused, by direction */
  held: { up: Buffer[]; down: Buffer[] };
  hung: boolean;
  /** held by holdOn until resume() */
  holding: boolean;
}

export async function startProxy(opts: { listen: { path: string } | { host: string; port?: number }; target: Endpoint }): Promise<Proxy> {
  let paused = false;
  let refusing = false;
  let hangPattern: RegExp | null = null;
  let holdPattern: RegExp | null = null;
  let trigger: { pattern: RegExp; left: number; then?: () => void } | null = null;
  const pipes = new Set<Pipe>();
  const requests: string[] = [];

  const flush = (p: Pipe) => {
    if (p.client.destroyed || p.upstream.destroyed) return;
    for (const c of p.held.up.splice(0)) p.upstream.write(c);
    for (const c of p.held.down.splice(0)) p.client.write(c);
  };

  /** true when this chunk (from the client) must not go through */
  const inspect = (p: Pipe, chunk: Buffer): boolean => {
    for (const m of chunk.toString('latin1').matchAll(REQUEST_LINE)) {
      const line = `${m[1]} ${m[2]}`;
      requests.push(line);
      if (hangPattern?.test(line)) p.hung = true;
      if (holdPattern?.test(line)) p.holding = true;
      if (trigger?.pattern.test(line)) {
        if (trigger.left-- <= 0) {
          const then = trigger.then;
          trigger = null;
          paused = true;
          then?.();
        }
      }
    }
    return p.hung;
  };

  const server = net.createServer((client) => {
    if (refusing) return void client.destroy();
    const upstream = 'path' in opts.target ? net.connect(opts.target.path) : net.connect(opts.target.port, opts.target.host);
    const p: Pipe = { client, upstream, held: { up: [], down: [] }, hung: false, holding: false };
    pipes.add(p);
    client.on('data', (chunk: Buffer) => {
      if (inspect(p, chunk)) return;
      if (paused || p.holding) p.held.up.push(chunk);
      else upstream.write(chunk);
    });
    upstream.on('data', (chunk: Buffer) => {
      if (paused || p.holding) p.held.down.push(chunk);
      else client.write(chunk);
    });
    const end = () => {
      pipes.delete(p);
      client.destroy();
      upstream.destroy();
    };
    client.on('close', end);
    upstream.on('close', () => {
      // an answer still held must reach the client first
      if (!p.held.down.length) end();
      else upstream.removeAllListeners('data');
    });
    client.on('error', end);
    upstream.on('error', end);
  });

  if ('path' in opts.listen) fs.rmSync(opts.listen.path, { force: true });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    if ('path' in opts.listen) server.listen(opts.listen.path, resolve);
    else server.listen(opts.listen.port ?? 0, opts.listen.host, resolve);
  });
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : null;
  const address = 'path' in opts.listen ? opts.listen.path : `${opts.listen.host}:${port}`;

  return {
    address,
    port,
    requests,
    get paused() {
      return paused;
    },
    pause: () => void (paused = true),
    resume: () => {
      paused = false;
      holdPattern = null;
      for (const p of pipes) {
        p.holding = false;
        flush(p);
      }
    },
    hang: (pattern) => void (hangPattern = pattern),
    holdOn: (pattern) => void (holdPattern = pattern),
    pauseOn: (pattern, o = {}) => void (trigger = { pattern, left: o.after ?? 0, then: o.then }),
    refuse: (on) => {
      refusing = on;
      if (on) for (const p of pipes) p.client.destroy();
    },
    close: async () => {
      for (const p of pipes) (p.client.destroy(), p.upstream.destroy());
      await new Promise<void>((r) => server.close(() => r()));
      if ('path' in opts.listen) fs.rmSync(opts.listen.path, { force: true });
    },
  };
}
