// Archives of one service's volumes (GET /backups?service=): per volume, newest first, with time, node,
// size, the file count recorded when staged, and the last restore drill (date and outcome).
import { ApiError, listBackups } from './api.js';
import { bytes, h, replaceContent, time } from './dom.js';

/** how many archives the view loads (the newest); the API pages further with before=<next> */
const LIMIT = 200;

/** a drill's date and outcome; `d` is {at, ok, jobId, error?} or null */
export function drillCell(d) {
  if (!d) return h('span', { class: 'muted' }, 'never');
  return h(
    'span',
    { class: 'drill' },
    h('span', { class: `badge ${d.ok ? 's-succeeded' : 's-failed'}` }, d.ok ? 'passed' : 'failed'),
    ' ',
    time(d.at),
    ' ',
    h('a', { href: `#/jobs/${d.jobId}` }, `#${d.jobId}`),
    !d.ok && d.error ? h('span', { class: 'muted' }, ` ${d.error}`) : null,
  );
}

function volumeTable(name, volume, archives) {
  return h(
    'div',
    { class: 'table-wrap' },
    h(
      'table',
      { class: 'stack archives', 'data-volume': volume },
      h('caption', { class: 'visually-hidden' }, `Archives of volume ${volume} of ${name}, newest first`),
      h('thead', {}, h('tr', {}, ['Time', 'Node', 'Size', 'Files', 'Encrypted', 'Last drill'].map((c) => h('th', { scope: 'col' }, c)))),
      h(
        'tbody',
        {},
        archives.map((a) =>
          h(
            'tr',
            { 'data-key': a.key, 'data-node': a.node },
            h('th', { scope: 'row', 'data-label': 'Time', class: 'archive-time' }, time(a.time)),
            h('td', { 'data-label': 'Node' }, a.node),
            h('td', { 'data-label': 'Size', class: 'archive-size', 'data-bytes': String(a.size) }, bytes(a.size)),
            h('td', { 'data-label': 'Files' }, a.files === undefined ? '—' : `${a.files} (${bytes(a.bytes)})`),
            h('td', { 'data-label': 'Encrypted' }, a.encrypted ? 'yes' : 'no'),
            h('td', { 'data-label': 'Last drill', class: 'archive-drill' }, drillCell(a.lastDrill ?? null)),
          ),
        ),
      ),
    ),
  );
}

/** the Archives section of a service's view; `load()` reads the bucket again (the view calls it when the service's backups change) */
export function archivesSection(name) {
  const body = h('div', {}, h('p', { class: 'muted' }, 'Loading the archives…'));
  const section = h('section', { class: 'card', 'aria-labelledby': 'archives-heading' }, h('h2', { id: 'archives-heading' }, 'Archives'), body);
  async function load() {
    let answer;
    try {
      answer = await listBackups({ service: name, limit: LIMIT });
    } catch (err) {
      const text = err instanceof ApiError ? `${err.message} (${err.code})` : `The archives could not be read: ${err.message}`;
      replaceContent(body, h('p', { class: 'refusal', 'data-error': err.code ?? '' }, text));
      return;
    }
    const byVolume = new Map();
    for (const a of answer.backups) byVolume.set(a.volume, [...(byVolume.get(a.volume) ?? []), a]);
    if (!byVolume.size) {
      replaceContent(body, h('p', { class: 'muted' }, 'No archive of this service’s volumes in the bucket.'));
      return;
    }
    replaceContent(
      body,
      [...byVolume.keys()].sort().map((volume) => [h('h3', { class: 'code' }, volume), volumeTable(name, volume, byVolume.get(volume))]),
      answer.next ? h('p', { class: 'muted' }, `The newest ${LIMIT} archives are shown.`) : null,
    );
  }
  return { section, load };
}
