import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { AppError } from '../../errors.js';

/** public/ sits at the repository (or image) root, three levels above src/api/routes and dist/api/routes */
export const PUBLIC_DIR = fileURLToPath(new URL('../../../public/', import.meta.url));

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
};

interface StaticFile {
  body: Buffer;
  type: string;
  etag: string;
}

/** Everything the page loads comes from this process: no CDN, no inline script, nothing framed. */
const SECURITY_HEADERS = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
};

/** the console's files, read once: only these names are ever served, so no request reaches another path */
export function loadConsoleFiles(dir = PUBLIC_DIR): Map<string, StaticFile> {
  const files = new Map<string, StaticFile>();
  const add = (name: string, file: string) => {
    const type = TYPES[path.extname(file)];
    if (!type) return;
    const body = fs.readFileSync(file);
    files.set(name, { body, type, etag: `"${crypto.createHash('sha256').update(body).digest('hex').slice(0, 20)}"` });
  };
  if (fs.existsSync(path.join(dir, 'index.html'))) add('index.html', path.join(dir, 'index.html'));
  const assets = path.join(dir, 'console');
  if (fs.existsSync(assets)) for (const f of fs.readdirSync(assets)) add(`console/${f}`, path.join(assets, f));
  return files;
}

/** GET / and GET /console/<file>: the web console (README "Web console"); no token, the page asks for one */
export const consoleRoutes: FastifyPluginAsync<{ dir?: string }> = async (app, opts) => {
  const files = loadConsoleFiles(opts.dir);
  if (!files.has('index.html')) app.log.warn({ dir: opts.dir ?? PUBLIC_DIR }, 'the web console is not installed: GET / answers 404');

  const send = (req: FastifyRequest, reply: FastifyReply, name: string) => {
    const f = files.get(name);
    if (!f) {
      throw new AppError('NOT_FOUND', name === 'index.html' ? 'the web console is not installed (public/ is missing)' : `no console file ${name.slice(8)}`);
    }
    reply.headers({ ...SECURITY_HEADERS, 'cache-control': 'no-cache', etag: f.etag });
    if (req.headers['if-none-match'] === f.etag) return reply.code(304).send();
    return reply.type(f.type).send(f.body);
  };

  app.get('/', { schema: { description: 'the web console (HTML); needs no token' } }, async (req, reply) => send(req, reply, 'index.html'));
  app.get<{ Params: { file: string } }>(
    '/console/:file',
    { schema: { description: "the web console's scripts, style and icon; need no token" } },
    async (req, reply) => send(req, reply, `console/${req.params.file}`),
  );
};
