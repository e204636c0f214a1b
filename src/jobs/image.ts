import type { Config } from '../config.js';
import type { RegistryAuth } from '../swarm/port.js';

export interface ImageRef {
  /** registry host[:port]; `docker.io` for Docker Hub */
  registry: string;
  /** repository path as written (without registry when it was implicit) */
  name: string;
  tag: string | null;
  digest: string | null;
}

// docker reference grammar, simplified: [host[:port]/]path[:tag][@sha256:hex]
const REF = /^(?:([a-zA-Z0-9.-]+(?::\d+)?)\/)?([a-z0-9]+(?:[._-][a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*)(?::([\w][\w.-]{0,127}))?(?:@(sha256:[a-f0-9]{64}))?$/;

export function parseImage(ref: string): ImageRef | null {
  const m = REF.exec(ref);
  if (!m) return null;
  let [, host, path, tag, digest] = m;
  // "a/b" has no registry; "host.tld/b", "host:5000/b" and "localhost/b" do
  if (host && !/[.:]/.test(host) && host !== 'localhost') {
    path = `${host}/${path}`;
    host = undefined;
  }
  return { registry: host ?? 'docker.io', name: host ? `${host}/${path}` : path!, tag: tag ?? null, digest: digest ?? null };
}

/** `name:tag` (tag defaults to latest), without a digest: what is resolved again against the registry */
export function tagged(ref: ImageRef): string {
  return `${ref.name}:${ref.tag ?? 'latest'}`;
}

export const hostOf = (url: string): string => url.replace(/^https?:\/\//, '').replace(/\/.*$/, '');

export interface AuthSources {
  /** registryAuth of the request */
  request?: { url: string; username: string; password: string } | null;
  /** the service's labels */
  labels?: Record<string, string>;
  config: Pick<Config, 'registry'>;
}

/** credentials for pulling `image`: the request's, else the service's labels, else SWARM_UTILS_REGISTRY_* when its host matches */
export function registryAuthFor(image: string, src: AuthSources): RegistryAuth | undefined {
  const ref = parseImage(image);
  if (src.request) return { username: src.request.username, password: src.request.password, serveraddress: hostOf(src.request.url) };
  const l = src.labels ?? {};
  const [url, user, password] = [l['swarm-utils.update.registry-url'], l['swarm-utils.update.registry-user'], l['swarm-utils.update.registry-password']];
  if (url && user && password) return { username: user, password, serveraddress: hostOf(url) };
  const r = src.config.registry;
  if (r.url && r.user && r.password && ref && hostOf(r.url) === ref.registry) {
    return { username: r.user, password: r.password, serveraddress: hostOf(r.url) };
  }
  return undefined;
}
