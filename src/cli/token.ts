/**
 * Where the client's token comes from (docs/cli.md, "Connection"), first found wins:
 * `--token-file`, `--token` (warned about: shell history and the process list), SWARM_UTILS_TOKEN,
 * then, inside the swarm-utils container, the admin token list the service itself reads
 * (SWARM_UTILS_ADMIN_TOKEN_LIST_FILE, else SWARM_UTILS_ADMIN_TOKEN_LIST): its first token.
 * The token is only ever sent in the Authorization header; no message names it.
 */
import { CliError, EXIT } from './exit.js';

export interface TokenSource {
  token: string | null;
  /** where it came from, for messages: never the token itself */
  from: string;
  warning: string | null;
}

export interface TokenInputs {
  tokenFile?: string;
  token?: string;
  env: Record<string, string | undefined>;
  readFile: (path: string) => string;
}

export const FLAG_WARNING =
  'warning: --token leaves the token in the shell history and the process list; use SWARM_UTILS_TOKEN or --token-file';

function readTokenFile(path: string, what: string, readFile: (path: string) => string): string {
  let text: string;
  try {
    text = readFile(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException | null)?.code ?? 'unreadable';
    throw new CliError(EXIT.usage, `cannot read the token file ${JSON.stringify(path)} of ${what} (${code})`);
  }
  const token = text.replace(/\r?\n$/, '');
  if (token.trim() === '') throw new CliError(EXIT.usage, `the token file ${JSON.stringify(path)} of ${what} is empty`);
  return token;
}

/** the first item of a comma list, as the service splits SWARM_UTILS_ADMIN_TOKEN_LIST */
const firstOfList = (list: string): string | null => list.split(',').map((t) => t.trim()).find((t) => t !== '') ?? null;

export function resolveToken(i: TokenInputs): TokenSource {
  if (i.tokenFile !== undefined) return { token: readTokenFile(i.tokenFile, '--token-file', i.readFile), from: '--token-file', warning: null };
  if (i.token !== undefined) {
    if (i.token.trim() === '') throw new CliError(EXIT.usage, '--token is empty');
    return { token: i.token, from: '--token', warning: FLAG_WARNING };
  }
  const envToken = i.env.SWARM_UTILS_TOKEN;
  if (envToken !== undefined && envToken.trim() !== '') return { token: envToken, from: 'SWARM_UTILS_TOKEN', warning: null };
  const adminFile = i.env.SWARM_UTILS_ADMIN_TOKEN_LIST_FILE?.trim();
  if (adminFile) {
    const token = firstOfList(readTokenFile(adminFile, 'SWARM_UTILS_ADMIN_TOKEN_LIST_FILE', i.readFile));
    return { token, from: 'SWARM_UTILS_ADMIN_TOKEN_LIST_FILE', warning: null };
  }
  const adminList = i.env.SWARM_UTILS_ADMIN_TOKEN_LIST;
  if (adminList !== undefined && firstOfList(adminList)) return { token: firstOfList(adminList), from: 'SWARM_UTILS_ADMIN_TOKEN_LIST', warning: null };
  return { token: null, from: 'nowhere', warning: null };
}

export const NO_TOKEN =
  'no token: set SWARM_UTILS_TOKEN, or give --token-file <path> (inside the swarm-utils container the admin token file is read by itself)';

/**
 * The API's address: SWARM_UTILS_URL, else the service on this machine (inside its container:
 * its SWARM_UTILS_PORT, on its SWARM_UTILS_HOST unless that listens on every address).
 */
export function resolveUrl(flag: string | undefined, env: Record<string, string | undefined>): URL {
  const given = flag ?? env.SWARM_UTILS_URL?.trim();
  const text = given || defaultUrl(env);
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new CliError(EXIT.usage, `${flag !== undefined ? '--url' : 'SWARM_UTILS_URL'} is not a URL: give http(s)://host[:port] (got ${JSON.stringify(redactUserinfo(text))})`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new CliError(EXIT.usage, `${flag !== undefined ? '--url' : 'SWARM_UTILS_URL'} must be an http:// or https:// URL`);
  if (url.username || url.password) throw new CliError(EXIT.usage, 'the URL must not hold credentials ("user:password@"): give the token through SWARM_UTILS_TOKEN or --token-file');
  if (url.searchParams.has('token')) throw new CliError(EXIT.usage, 'the URL must not hold ?token=: give the token through SWARM_UTILS_TOKEN or --token-file');
  return url;
}

const redactUserinfo = (text: string): string => text.replace(/\/\/[^/@]*@/, '//[redacted]@');

function defaultUrl(env: Record<string, string | undefined>): string {
  const port = env.SWARM_UTILS_PORT?.trim().replaceAll('_', '') || '8080';
  const host = env.SWARM_UTILS_HOST?.trim();
  const wildcard = !host || host === '0.0.0.0' || host === '::' || host === '[::]';
  const h = wildcard ? '127.0.0.1' : host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
  return `http://${h}:${port}`;
}
