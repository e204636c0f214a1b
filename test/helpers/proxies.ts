// Proxies the cluster tests put between swarm-utils (or its helpers) and a real server, to make a fault
// on purpose (a pause) or to see what went over the wire (the Docker API calls made, the connections a
// registry received). They forward bytes as they are.
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

export interface TcpProxy {
  port: number;
  /** new connections wait (are not forwarded) until resume() */
  pause(): void;
  resume(): void;
  /** connections accepted so far */
  connections(): number;
  close(): Promise<void>;
}

/** a TCP proxy on `host` (a free port) to `target`; paused, it holds new connections without answering */
export async function tcpProxy(host: string, target: { host: string; port: number }): Promise<TcpProxy> {
  let paused = false;
  let accepted = 0;
  const held: net.Socket[] = [];
  const sockets = new Set<net.Socket>();
  const forward = (client: net.Socket) => {
    const upstream = net.connect(target.port, target.host);
    sockets.add(upstream);
    client.pipe(upstream).pipe(client);
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
  };
  const server = net.createServer((client) => {
    accepted++;
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    if (paused) {
      client.pause();
      held.push(client);
    } else forward(client);
  });
  await new Promise<void>((resolve, reject) => server.listen(0, host, resolve).on('error', reject));
  return {
    port: (server.address() as net.AddressInfo).port,
    pause: () => void (paused = true),
    resume: () => {
      paused = false;
      for (const c of held.splice(0)) if (!c.destroyed) forward(c);
    },
    connections: () => accepted,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

export interface DockerSocketProxy {
  /** DOCKER_HOST for a process that should talk through the proxy */
  dockerHost: string;
  /** `METHOD /path` of every Engine API request seen, in order (version prefix removed, no query) */
  requests: string[];
  close(): Promise<void>;
}

const REQUEST_LINE = /(?:^|\r\n)(GET|POST|PUT|DELETE|HEAD) (\S+) HTTP\/1\.[01]\r\n/g;

/** a unix-socket proxy in front of the manager's Docker socket that records the API requests */
export async function dockerSocketProxy(upstream = '/var/run/docker.sock'): Promise<DockerSocketProxy> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'su-docker-proxy-'));
  const socketPath = path.join(dir, 'docker.sock');
  const requests: string[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const up = net.connect(upstream);
    sockets.add(client).add(up);
    let tail = '';
    client.on('data', (chunk: Buffer) => {
      // request lines of keep-alive connections; a line cut between two chunks is completed by `tail`
      const text = tail + chunk.toString('latin1');
      for (const m of text.matchAll(REQUEST_LINE)) {
        const url = m[2]!.replace(/^\/v\d+\.\d+/, '').replace(/\?.*$/, '');
        requests.push(`${m[1]} ${url}`);
      }
      tail = text.slice(-256).replace(/^[\s\S]*\r\n(?=[^\r\n]*$)/, '\r\n');
      up.write(chunk);
    });
    up.pipe(client);
    const end = () => {
      client.destroy();
      up.destroy();
      sockets.delete(client);
      sockets.delete(up);
    };
    client.on('error', end).on('close', end);
    up.on('error', end).on('close', end);
  });
  await new Promise<void>((resolve, reject) => server.listen(socketPath, resolve).on('error', reject));
  return {
    dockerHost: `unix://${socketPath}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => {
          fs.rmSync(dir, { recursive: true, force: true });
          resolve();
        });
      }),
  };
}
