import type { Config } from '../config.js';
import { AppError } from '../errors.js';
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

/** the names Docker Hub goes by */
const DOCKER_HUB = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io', 'registry.hub.docker.com']);

/** a registry as compared: host[:port] in lower case, without the default HTTPS port; Docker Hub by one name */
export function registryKey(urlOrHost: string): string {
  const host = hostOf(urlOrHost.trim()).toLowerCase().replace(/:443$/, '');
  return DOCKER_HUB.has(host) ? 'docker.io' : host;
}

export interface AuthSources {
  /** registryAuth of the request */
  request?: { url: string; username: string; password: string } | null;
  /** the service's labels */
  labels?: Record<string, string>;
  config: Pick<Config, 'registry'>;
  /** update: credentials for another registry than the image's fail VALIDATION; elsewhere they are just not sent */
  strict?: boolean;
}

/**
 * Credentials for pulling `image`: the request's, else the service's labels, else SWARM_UTILS_REGISTRY_*.
 * Credentials go only to the registry they name. In an update (`strict`), a request or labels naming
 * another registry than the image's fail VALIDATION: an update token must not send a service's password
 * to a host of its choice. Elsewhere (scaling a service, pulling a helper image) they are not sent.
 */
export function registryAuthFor(image: string, src: AuthSources): RegistryAuth | undefined {
  const ref = parseImage(image);
  const imageRegistry = ref ? registryKey(ref.registry) : null;
  const matches = (url: string, from: string): boolean => {
    if (registryKey(url) === imageRegistry) return true;
    if (!src.strict) return false;
    throw new AppError(
      'VALIDATION',
      `${from} is for registry ${registryKey(url)}, but image ${image} is on ${imageRegistry ?? 'an unknown registry'}: credentials are only sent to their own registry`,
    );
  };
  const req = src.request;
  if (req && matches(req.url, 'registryAuth')) return { username: req.username, password: req.password, serveraddress: hostOf(req.url) };
  const l = src.labels ?? {};
  const [url, user, password] = [l['swarm-utils.update.registry-url'], l['swarm-utils.update.registry-user'], l['swarm-utils.update.registry-password']];
  if (url && user && password && matches(url, 'the label swarm-utils.update.registry-url')) {
    return { username: user, password, serveraddress: hostOf(url) };
  }
  const r = src.config.registry;
  if (r.url && r.user && r.password && registryKey(r.url) === imageRegistry) {
    return { username: r.user, password: r.password, serveraddress: hostOf(r.url) };
  }
  return undefined;
}
