// A job's result, read for a person: an `all` job's children, a drill's archives and their counts, what a
// restore put back, a backup's archives, a migration's move; the raw JSON stays one click away.
import { baseName } from './dialog.js';
import { badge, bytes, h, targetText } from './dom.js';

const json = (v) => JSON.stringify(v, null, 2);
const count = (files, b) => (files === null || files === undefined ? '—' : `${files} files, ${bytes(b)}`);

function children(list) {
  return h(
    'ul',
    { class: 'children' },
    list.map((c) =>
      h('li', {}, h('a', { href: `#/jobs/${c.id}` }, `#${c.id}`), ` ${targetText(c.target)} `, badge(c.state), c.error ? ` ${c.error.code}: ${c.error.message}` : ''),
    ),
  );
}

function table(cls, caption, cols, rows) {
  return h(
    'div',
    { class: 'table-wrap' },
    h(
      'table',
      { class: `stack ${cls}` },
      h('caption', { class: 'visually-hidden' }, caption),
      h('thead', {}, h('tr', {}, cols.map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, rows),
    ),
  );
}

/** drill: `{key, files, bytes, expected?, ok, error?}` for one archive, `{drills: [...]}` for several */
function drills(result) {
  const list = Array.isArray(result.drills) ? result.drills : [result];
  return table(
    'drills',
    'The archives drilled and what each held',
    ['Archive', 'Unpacked', 'Recorded when made', 'Outcome'],
    list.map((d) =>
      h(
        'tr',
        { 'data-key': d.key, 'data-ok': String(d.ok) },
        h('th', { scope: 'row', class: 'code', 'data-label': 'Archive' }, baseName(d.key)),
        h('td', { 'data-label': 'Unpacked', class: 'drill-count' }, count(d.files, d.bytes)),
        h('td', { 'data-label': 'Recorded' }, d.expected ? count(d.expected.files, d.expected.bytes) : h('span', { class: 'muted' }, 'not recorded')),
        h(
          'td',
          { 'data-label': 'Outcome', class: 'drill-outcome' },
          h('span', { class: `badge ${d.ok ? 's-succeeded' : 's-failed'}` }, d.ok ? 'passed' : 'failed'),
          d.error ? h('span', {}, ` ${d.error}`) : null,
        ),
      ),
    ),
  );
}

function facts(cls, rows) {
  return h('dl', { class: `facts ${cls}` }, rows.filter(Boolean).map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
}

/** restore: `{service, node, volume, key, files, bytes, expected, safetyBackup}` */
function restored(r) {
  return facts('restore-result', [
    ['Archive', h('span', { class: 'code' }, r.key)],
    ['Volume', [h('span', { class: 'code' }, r.volume), ` on node ${r.node}`]],
    ['Now holds', count(r.files, r.bytes)],
    r.expected ? ['The archive holds', count(r.expected.files, r.expected.bytes)] : null,
    [
      'Safety backup',
      r.safetyBackup
        ? [h('span', { class: 'code safety-key' }, r.safetyBackup.key), ` (${bytes(r.safetyBackup.size)})`]
        : h('span', { class: 'muted' }, 'none (not asked for)'),
    ],
  ]);
}

/** backup: `{archives: [{node, volume, key, size}]}` */
function archives(list) {
  return table(
    'backup-archives',
    'The archives this backup made',
    ['Volume', 'Node', 'Archive', 'Size'],
    list.map((a) =>
      h(
        'tr',
        { 'data-key': a.key },
        h('th', { scope: 'row', class: 'code', 'data-label': 'Volume' }, a.volume),
        h('td', { 'data-label': 'Node' }, a.node),
        h('td', { class: 'code', 'data-label': 'Archive' }, baseName(a.key)),
        h('td', { 'data-label': 'Size' }, bytes(a.size)),
      ),
    ),
  );
}

/** migrate: `{service, from, to, replicas, volumes}` */
const migrated = (r) => facts('migrate-result', [['Moved', `from ${r.from} to ${r.to}`], ['Replicas', String(r.replicas)]]);

function readable(job) {
  const r = job.result;
  if (Array.isArray(r.children)) return children(r.children);
  if (job.type === 'drill' && (Array.isArray(r.drills) || typeof r.key === 'string')) return drills(r);
  if (job.type === 'restore' && typeof r.key === 'string') return restored(r);
  if (job.type === 'backup' && Array.isArray(r.archives)) return archives(r.archives);
  if (job.type === 'migrate' && r.to) return migrated(r);
  return null;
}

/** the Result of a job: readable where the console knows its shape, and its JSON */
export function resultView(job) {
  const r = job.result;
  const shown = r && typeof r === 'object' ? readable(job) : null;
  return [shown, h('details', { 'data-key': 'result' }, h('summary', {}, 'Result (JSON)'), h('pre', {}, json(r)))];
}
