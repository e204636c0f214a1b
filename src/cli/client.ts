/**
 * The HTTP client: the CLI talks to swarm-utils through its API only (SPEC section 6), with the
 * token in the Authorization header (never in the URL, so no proxy log and no message shows it).
 */
import { CliError, EXIT, type ExitCode } from './exit.js';

export interface ApiResponse {
  status: number;
  /** the body as the API sent it: `--json` prints it unchanged */
  text: string;
  json: unknown;
}

/** A 4xx or 5xx answer: the API's error.code and message, and the body for --json. */
export class ApiError extends CliError {
  constructor(
    code: ExitCode,
    message: string,
    readonly response: ApiResponse,
  ) {
    super(code, message);
    this.name = 'ApiError';
  }
}

export interface Client {
  readonly base: URL;
  request(method: 'GET' | 'POST', path: string, opts?: { body?: unknown; auth?: boolean; timeoutMs?: number }): Promise<ApiResponse>;
  /** request, then throw an ApiError unless 2xx */
  call(method: 'GET' | 'POST', path: string, opts?: { body?: unknown; auth?: boolean; timeoutMs?: number }): Promise<ApiResponse>;
}

/** long enough for a submission that waits for the copy of the state (3 s) on a loaded server */
const REQUEST_TIMEOUT_MS = 30_000;

/** what a failed connection says, without the URL's query or anything the server did not say */
function unreachable(base: URL, err: unknown): CliError {
  const cause = (err as { cause?: { code?: string; message?: string } } | null)?.cause;
  const timeout = err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError');
  const why = timeout ? 'no answer in time' : (cause?.code ?? cause?.message ?? (err instanceof Error ? err.message : String(err)));
  return new CliError(EXIT.unreachable, `cannot reach swarm-utils at ${base.origin} (${why}); check SWARM_UTILS_URL`);
}

export function errorOf(r: ApiResponse): ApiError {
  const body = r.json as { error?: { code?: unknown; message?: unknown; details?: unknown } } | null;
  const code = typeof body?.error?.code === 'string' ? body.error.code : `HTTP_${r.status}`;
  const message = typeof body?.error?.message === 'string' ? body.error.message : r.text.slice(0, 200).trim() || 'no message';
  // 503: the service is stopping (or not ready); like an unreachable one, asking again later helps
  const exit: ExitCode = r.status === 503 ? EXIT.unreachable : r.status >= 400 && r.status < 500 ? EXIT.refused : EXIT.failed;
  return new ApiError(exit, `${code}: ${message} (HTTP ${r.status})`, r);
}

export function createClient(base: URL, token: string | null): Client {
  const prefix = base.pathname.replace(/\/+$/, '');
  const client: Client = {
    base,
    async request(method, path, opts = {}) {
      const headers: Record<string, string> = { accept: 'application/json' };
      if (opts.auth !== false && token !== null) headers.authorization = `Bearer ${token}`;
      if (opts.body !== undefined) headers['content-type'] = 'application/json';
      let res: Response;
      let text: string;
      try {
        res = await fetch(new URL(prefix + path, base.origin), {
          method,
          headers,
          body: opts.body !== undefined ? JSON.stringify(opts.body) : undefined,
          signal: AbortSignal.timeout(opts.timeoutMs ?? REQUEST_TIMEOUT_MS),
        });
        text = await res.text();
      } catch (err) {
        throw unreachable(base, err);
      }
      let json: unknown = null;
      try {
        json = JSON.parse(text);
      } catch {
        /* not JSON: kept as text */
      }
      return { status: res.status, text, json };
    },
    async call(method, path, opts) {
      const r = await client.request(method, path, opts);
      if (r.status >= 400) throw errorOf(r);
      return r;
    },
  };
  return client;
}

/** a query string from the given fields (undefined ones left out) */
export function query(fields: Record<string, string | number | boolean | undefined>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(fields)) if (v !== undefined) q.set(k, String(v));
  const s = q.toString();
  return s ? `?${s}` : '';
}
