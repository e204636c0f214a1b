// The console talks to the public API only, with the token of this tab (sessionStorage, never a URL).

const KEY = 'swarm-utils.token';

export const session = {
  token: () => sessionStorage.getItem(KEY),
  set: (token) => sessionStorage.setItem(KEY, token),
  clear: () => sessionStorage.removeItem(KEY),
};

/** an error answer of the API: its status, contract code and message */
export class ApiError extends Error {
  constructor(status, code, message, requestId) {
    super(message);
    this.status = status;
    this.code = code;
    this.requestId = requestId;
  }
  /** the token is missing or grants nothing: back to the prompt */
  get isAuth() {
    return this.status === 401 || this.status === 403;
  }
}

export async function api(method, path, body) {
  const headers = { accept: 'application/json' };
  const token = session.token();
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  let res;
  try {
    res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: 'no-store' });
  } catch {
    throw new ApiError(0, 'NETWORK', 'swarm-utils did not answer: is it running, and is this page served by it?');
  }
  const text = await res.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    /* not JSON: handled below */
  }
  if (res.ok) return json;
  const e = json?.error;
  throw new ApiError(res.status, e?.code ?? `HTTP_${res.status}`, e?.message ?? `swarm-utils answered ${res.status} ${res.statusText}`, json?.requestId);
}

const query = (params) => {
  const q = new URLSearchParams(Object.entries(params).filter(([, v]) => v !== undefined && v !== null && v !== ''));
  const text = q.toString();
  return text ? `?${text}` : '';
};

export const getServices = () => api('GET', '/services');
export const listJobs = (filters) => api('GET', `/jobs${query(filters)}`);
export const getJob = (id) => api('GET', `/jobs/${encodeURIComponent(id)}`);
export const cancelJob = (id) => api('POST', `/jobs/${encodeURIComponent(id)}/cancel`);
/** body: {type, service|node|all, …}; answers the queued job */
export const submitJob = (body) => api('POST', '/jobs', body);
/** the archives in the bucket: {backups: [{key, node, volume, time, size, encrypted, files?, bytes?, verifiedAt?, lastDrill?}], next} */
export const listBackups = (filters) => api('GET', `/backups${query(filters)}`);
/** GET /service/status: the service's tasks (node, state) among other things; logs=0 asks for no log lines */
export const getStatus = (service) => api('GET', `/service/status${query({ service, logs: 0 })}`);
