// Archives of one service's volumes (GET /backups?service=): per volume, newest first, with time, node,
// size, the file count recorded when staged, and the last restore drill (date and outcome); for a token
// that may, each archive can be drilled or restored, and each volume's newest archive drilled.
import { ApiError, listBackups } from './api.js';
import { mayStart, start } from './actions.js';
import { baseName } from './dialog.js';
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

/** the Drill… and Restore… buttons of one archive, as far as the token may */
function archiveButtons(name, a, may, ctx) {
  const button = (type, label) =>
    h(
      'button',
      { type: 'button', class: 'small', 'data-action': type, 'data-key': `${type}-${a.key}`, onclick: () => start(type, { service: name }, ctx, { archive: a }) },
      label,
      h('span', { class: 'visually-hidden' }, ` archive ${baseName(a.key)}`),
      '…',
    );
  return h('div', { class: 'actions' }, may.drill ? button('drill', 'Drill') : null, may.restore ? button('restore', 'Restore') : null);
}

function volumeTable(name, volume, archives, may, ctx) {
  const acts = may.drill || may.restore;
  return h(
    'div',
    { class: 'table-wrap' },
    h(
      'table',
      { class: 'stack archives', 'data-volume': volume },
      h('caption', { class: 'visually-hidden' }, `Archives of volume ${volume} of ${name}, newest first`),
      h(
        'thead',
        {},
        h('tr', {}, ['Time', 'Node', 'Size', 'Files', 'Encrypted', 'Last drill', ...(acts ? ['Actions'] : [])].map((c) => h('th', { scope: 'col' }, c))),
      ),
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
            acts ? h('td', { 'data-label': 'Actions' }, archiveButtons(name, a, may, ctx)) : null,
          ),
        ),
      ),
    ),
  );
}

/**
 * The Archives section of a service's view. `load()` reads the bucket again (the view calls it when the
 * service's backups or drills change); `allow(actions)` gives the service's actions (GET /services), which
 * decide the buttons.
 */
export function archivesSection(name, ctx) {
  const body = h('div', {}, h('p', { class: 'muted' }, 'Loading the archives…'));
  const section = h('section', { class: 'card', 'aria-labelledby': 'archives-heading' }, h('h2', { id: 'archives-heading' }, 'Archives'), body);
  let answer = null;
  let may = { drill: false, restore: false };

  function render() {
    if (!answer) return;
    const byVolume = new Map();
    for (const a of answer.backups) byVolume.set(a.volume, [...(byVolume.get(a.volume) ?? []), a]);
    if (!byVolume.size) {
      replaceContent(body, h('p', { class: 'muted' }, 'No archive of this service’s volumes in the bucket.'));
      return;
    }
    replaceContent(
      body,
      [...byVolume.keys()].sort().map((volume) => [
        h(
          'div',
          { class: 'volume-head' },
          h('h3', { class: 'code' }, volume),
          may.drill
            ? h(
                'button',
                { type: 'button', class: 'small', 'data-action': 'drill-volume', 'data-volume': volume, 'data-key': `drill-volume-${volume}`, onclick: () => start('drill', { service: name }, ctx, { volume }) },
                'Drill the newest archive',
                h('span', { class: 'visually-hidden' }, ` of volume ${volume}`),
                '…',
              )
            : null,
        ),
        volumeTable(name, volume, byVolume.get(volume), may, ctx),
      ]),
      answer.next ? h('p', { class: 'muted' }, `The newest ${LIMIT} archives are shown.`) : null,
    );
  }

  async function load() {
    try {
      answer = await listBackups({ service: name, limit: LIMIT });
    } catch (err) {
      answer = null;
      const text = err instanceof ApiError ? `${err.message} (${err.code})` : `The archives could not be read: ${err.message}`;
      replaceContent(body, h('p', { class: 'refusal', 'data-error': err.code ?? '' }, text));
      return;
    }
    render();
  }

  function allow(actions) {
    const next = { drill: mayStart(actions, 'drill'), restore: mayStart(actions, 'restore') };
    if (next.drill === may.drill && next.restore === may.restore) return;
    may = next;
    render();
  }
  return { section, load, allow };
}
