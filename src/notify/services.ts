/**
 * Shoutrrr-style notification URLs (SWARM_UTILS_NOTIFY_URLS, what offen/docker-volume-backup takes as
 * NOTIFICATION_URLS): each URL is parsed once at start-up into the request(s) its service expects.
 * Nothing here prints a URL or a part of one: a problem names the scheme only.
 */
import { createHash } from 'node:crypto';
import nodemailer from 'nodemailer';

export const SCHEMES = ['slack', 'discord', 'telegram', 'smtp', 'ntfy', 'gotify', 'teams', 'generic+https', 'generic+http', 'https', 'http'] as const;

/** one HTTP request a service sends for a message */
export interface OutRequest {
  url: string;
  headers: Record<string, string>;
  body: string;
}

export interface Service {
  scheme: string;
  /** the parts of the URL that may be secret (for the redactor) */
  secrets: string[];
  /** the HTTP requests for `text` (null: not an HTTP service) */
  requests(text: string, title: string): OutRequest[] | null;
  /** smtp only: sends the mail */
  mail?(text: string, title: string, timeoutMs: number): Promise<void>;
}

/** a short stable id of a URL (the notifications.target column): never the URL itself */
export function targetId(url: string): string {
  return `u${createHash('sha256').update(url.trim()).digest('hex').slice(0, 12)}`;
}

const json = (body: unknown, extra: Record<string, string> = {}): Pick<OutRequest, 'headers' | 'body'> => ({
  headers: { 'content-type': 'application/json', ...extra },
  body: JSON.stringify(body),
});

const dec = (s: string): string => decodeURIComponent(s);
const truthy = (v: string | null): boolean => v !== null && /^(1|yes|true|on)$/i.test(v);

function pathParts(u: URL): string[] {
  return u.pathname.split('/').filter(Boolean).map(dec);
}

function secretsOfUrl(raw: string, u: URL): string[] {
  return [raw, u.href, u.pathname, u.search, dec(u.username), dec(u.password), ...pathParts(u), ...u.searchParams.values()].filter(
    (s) => s.length >= 3,
  );
}

/** Parses one URL; a string is the problem (naming no part of the URL). */
export function parseService(raw: string, format: 'json' | 'slack' = 'json'): Service | string {
  let u: URL;
  try {
    u = new URL(raw.trim());
  } catch {
    return 'is not a URL';
  }
  const scheme = u.protocol.replace(/:$/, '').toLowerCase();
  try {
    dec(u.username);
    dec(u.password);
  } catch {
    return `(scheme "${scheme.slice(0, 20)}"): the user:password@ part is not valid percent-encoding`;
  }
  const secrets = secretsOfUrl(raw, u);
  const q = u.searchParams;
  const http = (build: (text: string, title: string) => OutRequest[]): Service => ({ scheme, secrets, requests: build });
  const bad = (why: string): string => `(scheme "${scheme}"): ${why}`;
  switch (scheme) {
    case 'slack': {
      // slack://hook:A-B-C@webhook, slack://[botname@]A/B/C, slack://xoxb:token@channel
      const user = dec(u.username);
      const pass = dec(u.password);
      const botname = q.get('botname') ?? (user && !pass ? user : undefined);
      if (user === 'hook' && pass) {
        const parts = pass.split('-');
        if (parts.length !== 3) return bad('a webhook token is tokenA-tokenB-tokenC');
        return http((text) => [{ url: `https://hooks.slack.com/services/${parts.join('/')}`, ...json({ text, ...(botname ? { username: botname } : {}) }) }]);
      }
      if (/^xox[bp]$/.test(user) && pass) {
        const channel = u.hostname;
        return http((text) => [
          { url: 'https://slack.com/api/chat.postMessage', ...json({ channel, text }, { authorization: `Bearer ${user}-${pass}` }) },
        ]);
      }
      const parts = [u.hostname, ...pathParts(u)].filter(Boolean);
      if (parts.length !== 3) return bad('expected slack://[botname@]tokenA/tokenB/tokenC or slack://hook:tokenA-tokenB-tokenC@webhook');
      return http((text) => [{ url: `https://hooks.slack.com/services/${parts.join('/')}`, ...json({ text, ...(botname ? { username: botname } : {}) }) }]);
    }
    case 'discord': {
      const token = dec(u.username);
      const id = u.hostname;
      if (!token || !id) return bad('expected discord://token@webhookid');
      return http((text) => [{ url: `https://discord.com/api/webhooks/${id}/${token}`, ...json({ content: text }) }]);
    }
    case 'telegram': {
      const token = `${dec(u.username)}${u.password ? `:${dec(u.password)}` : ''}`;
      const chats = (q.get('chats') ?? q.get('channels') ?? '').split(',').map((c) => c.trim()).filter(Boolean);
      if (!token || !chats.length) return bad('expected telegram://token@telegram?chats=a,b');
      return http((text) => chats.map((chat_id) => ({ url: `https://api.telegram.org/bot${token}/sendMessage`, ...json({ chat_id, text }) })));
    }
    case 'teams': {
      const group = dec(u.username);
      const tenant = u.hostname;
      const [altId, groupOwner] = pathParts(u);
      const host = q.get('host');
      if (!group || !tenant || !altId || !groupOwner || !host) return bad('expected teams://group@tenant/altId/groupOwner?host=org.webhook.office.com');
      return http((text, title) => [
        {
          url: `https://${host}/webhookb2/${group}@${tenant}/IncomingWebhook/${altId}/${groupOwner}`,
          ...json({ '@type': 'MessageCard', '@context': 'https://schema.org/extensions', summary: title, title, text }),
        },
      ]);
    }
    case 'ntfy': {
      const topic = pathParts(u).join('/');
      if (!u.host || !topic) return bad('expected ntfy://[user:pass@]host[:port]/topic');
      const base = `${q.get('scheme') ?? 'https'}://${u.host}/${topic}`;
      const headers: Record<string, string> = { 'content-type': 'text/plain; charset=utf-8' };
      for (const [k, h] of [['title', 'Title'], ['priority', 'Priority'], ['tags', 'Tags'], ['click', 'Click'], ['icon', 'Icon']] as const) {
        const v = q.get(k);
        if (v) headers[h] = v;
      }
      if (u.username) headers.authorization = `Basic ${Buffer.from(`${dec(u.username)}:${dec(u.password)}`).toString('base64')}`;
      return http((text, title) => [{ url: base, headers: { Title: title, ...headers }, body: text }]);
    }
    case 'gotify': {
      const parts = pathParts(u);
      const token = parts.pop();
      if (!u.host || !token) return bad('expected gotify://host[:port][/path]/token');
      const proto = truthy(q.get('disabletls')) ? 'http' : 'https';
      const url = `${proto}://${u.host}${parts.length ? `/${parts.join('/')}` : ''}/message`;
      const priority = Number(q.get('priority') ?? 0);
      return http((text, title) => [{ url, ...json({ title: q.get('title') ?? title, message: text, priority }, { 'x-gotify-key': token }) }]);
    }
    case 'generic+https':
    case 'generic+http':
    case 'generic': {
      const proto = scheme === 'generic+http' || truthy(q.get('disabletls')) ? 'http' : 'https';
      const target = new URL(`${proto}://${u.host}${u.pathname}`);
      const headers: Record<string, string> = { 'content-type': q.get('contenttype') ?? 'application/json' };
      const template = q.get('template');
      const titleKey = q.get('titlekey') ?? 'title';
      const messageKey = q.get('messagekey') ?? 'message';
      for (const [k, v] of q) {
        if (k.startsWith('@')) headers[k.slice(1)] = v;
        else if (k.startsWith('$')) continue;
        else if (!['template', 'contenttype', 'disabletls', 'method', 'messagekey', 'titlekey', 'title'].includes(k.toLowerCase())) target.searchParams.append(k, v);
      }
      if (u.username) headers.authorization = `Basic ${Buffer.from(`${dec(u.username)}:${dec(u.password)}`).toString('base64')}`;
      return http((text, title) => [
        { url: target.href, headers, body: template === 'json' ? JSON.stringify({ [titleKey]: title, [messageKey]: text }) : text },
      ]);
    }
    case 'http':
    case 'https': {
      const target = new URL(u.href);
      const headers: Record<string, string> = { 'content-type': 'application/json' };
      if (u.username || u.password) {
        headers.authorization = `Basic ${Buffer.from(`${dec(u.username)}:${dec(u.password)}`).toString('base64')}`;
        target.username = '';
        target.password = '';
      }
      // the body is built by the notifier (NOTIFY_FORMAT); `text` here is that body
      void format;
      return http((body) => [{ url: target.href, headers, body }]);
    }
    case 'smtp': {
      const from = q.get('from') ?? q.get('fromaddress');
      const to = (q.get('to') ?? q.get('toaddresses') ?? '').split(',').map((t) => t.trim()).filter(Boolean);
      if (!u.hostname || !from || !to.length) return bad('expected smtp://user:pass@host:port/?from=x&to=a,b');
      const port = Number(u.port || 25);
      const encryption = (q.get('encryption') ?? 'auto').toLowerCase();
      const startTls = q.get('usestarttls') ?? q.get('useStartTLS');
      const auth = (q.get('auth') ?? '').toLowerCase();
      const transport = nodemailer.createTransport({
        host: u.hostname,
        port,
        secure: encryption === 'implicittls' || encryption === 'ssl' || (encryption === 'auto' && port === 465),
        connectionTimeout: 10_000,
        greetingTimeout: 10_000,
        socketTimeout: 10_000,
        ignoreTLS: encryption === 'none' || (startTls !== null && !truthy(startTls)),
        ...(u.username && auth !== 'none' ? { auth: { user: dec(u.username), pass: dec(u.password) } } : {}),
      });
      const subject = q.get('subject');
      return {
        scheme,
        secrets,
        requests: () => null,
        async mail(text, title, timeoutMs) {
          void timeoutMs;
          await transport.sendMail({ from, to, subject: subject ?? title, text });
        },
      };
    }
    default:
      return `has an unsupported scheme "${scheme.slice(0, 20)}" (supported: ${SCHEMES.join(', ')})`;
  }
}
