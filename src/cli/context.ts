/** What every command starts from: the connection, the token, where output goes. */
import { type Client, createClient } from './client.js';
import { CliError, EXIT } from './exit.js';
import { type Io, type Out, redacting } from './io.js';
import { NO_TOKEN, resolveToken, resolveUrl } from './token.js';

export interface GlobalOpts {
  url?: string;
  token?: string;
  tokenFile?: string;
  json?: boolean;
}

export interface Ctx {
  io: Io;
  client: Client;
  json: boolean;
  out: Out;
  err: Out;
  /** where live progress goes: stderr with --json, so stdout holds only the API's JSON */
  progress: Out;
  pollMs: number;
}

export function contextOf(io: Io, g: GlobalOpts): Ctx {
  const source = resolveToken({ token: g.token, tokenFile: g.tokenFile, env: io.env, readFile: io.readFile });
  const err = redacting(io.stderr, source.token);
  if (source.warning) err.write(`swarm-utils: ${source.warning}\n`);
  const base = resolveUrl(g.url, io.env);
  const raw = createClient(base, source.token);
  // a route that needs a token is not asked without one: the answer would only be 401
  const client: Client = {
    base,
    request: (method, path, opts) => (opts?.auth !== false && source.token === null ? Promise.reject(new CliError(EXIT.usage, NO_TOKEN)) : raw.request(method, path, opts)),
    call: (method, path, opts) => (opts?.auth !== false && source.token === null ? Promise.reject(new CliError(EXIT.usage, NO_TOKEN)) : raw.call(method, path, opts)),
  };
  const out = redacting(io.stdout, source.token);
  const json = g.json === true;
  return { io, client, json, out, err, progress: json ? err : out, pollMs: io.pollMs ?? 500 };
}
