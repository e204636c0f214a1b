// Services: what this token may see, their swarm-utils labels (redacted by the API), replicas,
// the last successful backup and the last drill per volume and node, the archives in the bucket (one
// service's view, each with drill and restore where the token may), and the actions the token may take.
import { getServices, listJobs } from './api.js';
import { ACTIONS, actionButtons, openAction } from './actions.js';
import { archivesSection, drillCell } from './archives.js';
import { ago, bytes, h, replaceContent, time } from './dom.js';
import { jobsTable } from './jobs.js';

function labels(svc) {
  const entries = Object.entries(svc.labels);
  if (!entries.length) return h('p', { class: 'muted' }, 'No swarm-utils labels.');
  return h(
    'div',
    { class: 'table-wrap' },
    h(
      'table',
      { class: 'labels' },
      h('caption', { class: 'visually-hidden' }, `swarm-utils labels of ${svc.name}`),
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Label'), h('th', { scope: 'col' }, 'Value'))),
      h('tbody', {}, entries.map(([k, v]) => h('tr', {}, h('th', { scope: 'row', class: 'code' }, k), h('td', { class: 'code' }, v)))),
    ),
  );
}

function volumes(svc, heading) {
  if (svc.volumes === null) return null;
  const rows = svc.volumes;
  return [
    h(heading, {}, 'Volumes'),
    svc.volumeError ? h('p', { class: 'refusal' }, svc.volumeError) : null,
    rows.length
      ? h(
          'div',
          { class: 'table-wrap' },
          h(
            'table',
            { class: 'stack volumes' },
            h('caption', { class: 'visually-hidden' }, `Last successful backup and last drill of each volume of ${svc.name}`),
            h(
              'thead',
              {},
              h('tr', {}, ['Volume', 'Node', 'Last successful backup', 'Size', 'Job', 'Last drill'].map((c) => h('th', { scope: 'col' }, c))),
            ),
            h(
              'tbody',
              {},
              rows.map((v) => {
                const b = v.lastBackup;
                return h(
                  'tr',
                  { 'data-volume': v.volume, 'data-node': v.node ?? '' },
                  h('th', { scope: 'row', class: 'code', 'data-label': 'Volume' }, v.volume),
                  h('td', { 'data-label': 'Node' }, v.node ?? '—'),
                  h('td', { 'data-label': 'Last backup', class: 'last-backup' }, b ? h('span', {}, time(b.at), h('span', { class: 'muted' }, ` (${ago(b.at)})`)) : 'never'),
                  h('td', { 'data-label': 'Size' }, b ? bytes(b.size) : '—'),
                  h('td', { 'data-label': 'Job' }, b ? h('a', { href: `#/jobs/${b.jobId}` }, `#${b.jobId}`) : '—'),
                  h('td', { 'data-label': 'Last drill', class: 'last-drill' }, drillCell(v.lastDrill ?? null)),
                );
              }),
            ),
          ),
        )
      : h('p', { class: 'muted' }, 'No volume to back up.'),
  ];
}

function replicas(svc) {
  const r = svc.replicas;
  const text = r.desired === null ? `${r.running} running` : `${r.running} of ${r.desired} running`;
  const ok = r.desired === null || r.running === r.desired;
  return h('span', { class: ok ? '' : 'warn' }, text);
}

/** one service; `level` is the heading level of its name (2 in the list, none in its own view) */
function card(svc, ctx, { level = 2 } = {}) {
  const id = `svc-${svc.name}`;
  const title = level ? h(`h${level}`, { id }, h('a', { href: `#/services/${encodeURIComponent(svc.name)}` }, svc.name)) : null;
  const sub = `h${(level || 1) + 1}`;
  return h(
    'article',
    { class: 'card', 'data-service': svc.name, 'aria-labelledby': level ? id : null, 'aria-label': level ? null : svc.name },
    title,
    h(
      'dl',
      { class: 'facts' },
      h('dt', {}, 'Image'),
      h('dd', { class: 'code' }, svc.image),
      h('dt', {}, 'Mode'),
      h('dd', {}, svc.mode),
      h('dt', {}, 'Replicas'),
      h('dd', {}, replicas(svc)),
    ),
    h(sub, {}, 'Labels'),
    labels(svc),
    volumes(svc, sub),
    h(sub, {}, 'Actions'),
    actionButtons(svc.actions, { service: svc.name }, ctx),
  );
}

function swarmActions(data, ctx) {
  const mayCleanNodes = data.nodes.length > 0 && ACTIONS.clean;
  if (!data.all.length && !mayCleanNodes) return null;
  const select = h(
    'select',
    { id: 'clean-node', name: 'node' },
    data.nodes.map((n) => h('option', { value: n.hostname }, `${n.hostname} (${n.role}, ${n.state}${n.availability === 'active' ? '' : `, ${n.availability}`})`)),
  );
  return h(
    'section',
    { class: 'card', 'aria-labelledby': 'swarm-actions' },
    h('h2', { id: 'swarm-actions' }, 'Whole swarm'),
    data.all.length ? actionButtons(data.all, { all: true }, ctx) : null,
    mayCleanNodes
      ? h(
          'form',
          {
            class: 'inline',
            onsubmit: (e) => {
              e.preventDefault();
              openAction('clean', { node: select.value }, ctx);
            },
          },
          h('label', { for: 'clean-node' }, 'Node'),
          select,
          h('button', { type: 'submit', 'data-action': 'clean-node' }, 'Clean node…'),
        )
      : null,
  );
}

/** #/services */
export function servicesView(main, ctx) {
  const body = h('div');
  main.replaceChildren(h('h1', { tabindex: -1 }, 'Services'), body);
  let shown = '';
  async function refresh() {
    const data = await ctx.read(getServices);
    if (!data) return;
    const text = JSON.stringify(data);
    if (text === shown) return;
    shown = text;
    replaceContent(
      body,
      swarmActions(data, ctx),
      data.services.length ? data.services.map((s) => card(s, ctx)) : h('p', { class: 'muted' }, 'This token may see no service.'),
    );
  }
  return ctx.every(5000, refresh);
}

/** #/services/:name: one service with its archives and recent jobs */
export function serviceView(main, ctx, name) {
  const body = h('div');
  const jobs = h('div');
  const archives = archivesSection(name, ctx);
  archives.section.hidden = true;
  /** the volumes' last backups and drills the archives were loaded for: loaded again when they change */
  let archivesFor = null;
  main.replaceChildren(
    h('p', {}, h('a', { href: '#/services' }, '← All services')),
    h('h1', { tabindex: -1 }, name),
    body,
    archives.section,
    h('h2', {}, 'Recent jobs'),
    jobs,
    h('p', {}, h('a', { href: `#/jobs?service=${encodeURIComponent(name)}` }, `All jobs of ${name}`)),
  );
  document.title = `${name} · swarm-utils`;
  let shown = '';
  async function refresh() {
    const [data, recent] = await Promise.all([ctx.read(getServices), ctx.read(() => listJobs({ service: name, limit: 10 }))]);
    if (!data || !recent) return;
    const svc = data.services.find((s) => s.name === name);
    const text = JSON.stringify([svc, recent]);
    if (text === shown && !recent.jobs.some((j) => j.state === 'running')) return;
    shown = text;
    replaceContent(body, svc ? card(svc, ctx, { level: 0 }) : h('p', { class: 'refusal' }, `This token may not see service ${name}, or it does not exist.`));
    replaceContent(jobs, jobsTable(recent.jobs, { caption: `Recent jobs of ${name}`, compact: true }));
    // the archives: only for a token that may back the service up or restore it; the bucket is read again only when a backup or drill changed something
    archives.section.hidden = !svc || svc.volumes === null;
    archives.allow(svc?.actions ?? []);
    const volumes = svc && svc.volumes !== null ? JSON.stringify(svc.volumes) : null;
    if (volumes !== null && volumes !== archivesFor) {
      archivesFor = volumes;
      await archives.load();
    }
  }
  return ctx.every(3000, refresh);
}
