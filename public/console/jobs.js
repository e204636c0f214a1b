// Jobs: the list (newest first, filters, live) and one job (steps, times, outputs, error, cancel).
import { cancelJob, getJob, getServices, listJobs } from './api.js';
import { baseName } from './dialog.js';
import { resultView } from './results.js';
import { announce, badge, duration, h, replaceContent, targetText, time } from './dom.js';

/** every job type of the API (README "HTTP API"), also those the console has no button for (migrate) */
const TYPES = ['clean', 'backup', 'update', 'restore', 'drill', 'migrate'];
const STATES = ['queued', 'running', 'succeeded', 'failed', 'canceled'];
const FINAL = ['succeeded', 'failed', 'canceled'];
const FILTERS = ['type', 'state', 'service', 'node'];

const targetLink = (t) => (t.service ? h('a', { href: `#/services/${encodeURIComponent(t.service)}` }, targetText(t)) : targetText(t));

/** what a job acts on beyond its target, in a few words: the volume of a restore or drill, an update's image, a migration's node */
function what(j) {
  const p = j.params ?? {};
  if (j.type === 'update' && p.image) return p.image;
  if (j.type === 'migrate' && p.to) return `to ${p.to}`;
  if ((j.type === 'restore' || j.type === 'drill') && (p.volume || p.key)) return p.volume ?? baseName(p.key);
  return '';
}

/** the jobs table; `compact` leaves out the target (a service's own jobs) */
export function jobsTable(jobs, { caption, compact = false } = {}) {
  if (!jobs.length) return h('p', { class: 'muted' }, 'No jobs.');
  const cols = ['Job', 'Type', ...(compact ? [] : ['Target']), 'State', 'Created', 'Duration', 'Source'];
  return h(
    'div',
    { class: 'table-wrap' },
    h(
      'table',
      { class: 'stack jobs' },
      h('caption', { class: 'visually-hidden' }, caption ?? 'Jobs, newest first'),
      h('thead', {}, h('tr', {}, cols.map((c) => h('th', { scope: 'col' }, c)))),
      h(
        'tbody',
        {},
        jobs.map((j) =>
          h(
            'tr',
            { 'data-job': j.id, 'data-state': j.state },
            h('th', { scope: 'row', 'data-label': 'Job' }, h('a', { href: `#/jobs/${j.id}`, 'data-key': `job-${j.id}` }, `#${j.id}`)),
            h('td', { 'data-label': 'Type' }, j.type, what(j) ? h('span', { class: 'muted what' }, ` ${what(j)}`) : null),
            compact ? null : h('td', { 'data-label': 'Target' }, targetLink(j.target)),
            h('td', { 'data-label': 'State' }, badge(j.state), j.error ? h('span', { class: 'code' }, ` ${j.error.code}`) : null),
            h('td', { 'data-label': 'Created' }, time(j.createdAt)),
            h('td', { 'data-label': 'Duration' }, duration(j.startedAt, j.finishedAt)),
            h('td', { 'data-label': 'Source' }, j.parentId ? h('a', { href: `#/jobs/${j.parentId}` }, `#${j.parentId}`) : j.source),
          ),
        ),
      ),
    ),
  );
}

function select(name, label, options, value) {
  return h(
    'div',
    { class: 'field' },
    h('label', { for: `filter-${name}` }, label),
    h('select', { id: `filter-${name}`, name }, h('option', { value: '' }, 'any'), options.map((o) => h('option', { value: o, selected: o === value }, o))),
  );
}

function textFilter(name, label, value, listId) {
  return h(
    'div',
    { class: 'field' },
    h('label', { for: `filter-${name}` }, label),
    h('input', { id: `filter-${name}`, name, type: 'text', value, list: listId, autocomplete: 'off', spellcheck: 'false' }),
  );
}

/** the filter form; datalists offer the names this token may see */
function filterForm(filters, apply) {
  const services = h('datalist', { id: 'known-services' });
  const nodes = h('datalist', { id: 'known-nodes' });
  const form = h(
    'form',
    { class: 'filters', 'aria-label': 'Filter jobs' },
    select('type', 'Type', TYPES, filters.type),
    select('state', 'State', STATES, filters.state),
    textFilter('service', 'Service', filters.service, 'known-services'),
    textFilter('node', 'Node', filters.node, 'known-nodes'),
    h('div', { class: 'buttons' }, h('button', { type: 'submit' }, 'Apply'), h('button', { type: 'reset' }, 'Clear')),
    services,
    nodes,
  );
  const values = () => Object.fromEntries(FILTERS.map((k) => [k, form.elements[k].value.trim()]));
  form.addEventListener('submit', (e) => (e.preventDefault(), apply(values())));
  form.addEventListener('reset', () => setTimeout(() => apply(values())));
  for (const el of form.querySelectorAll('select')) el.addEventListener('change', () => apply(values()));
  getServices().then(
    (s) => {
      services.replaceChildren(...s.services.map((x) => h('option', { value: x.name })));
      nodes.replaceChildren(...s.nodes.map((x) => h('option', { value: x.hostname })));
    },
    () => undefined,
  );
  return form;
}

/** #/jobs?type=&state=&service=&node= */
export function jobsView(main, ctx, params) {
  let filters = Object.fromEntries(FILTERS.map((k) => [k, params.get(k) ?? '']));
  let first = [];
  let older = [];
  let next = null;
  let shown = '';

  const apply = (values) => {
    filters = values;
    const q = new URLSearchParams(Object.entries(filters).filter(([, v]) => v)).toString();
    // the filters live in the address (shareable, back button) without re-running the route
    history.replaceState(null, '', q ? `#/jobs?${q}` : '#/jobs');
    older = [];
    next = null;
    shown = '';
    return refresh();
  };
  const meta = h('p', { class: 'muted live-note' });
  const list = h('div', { id: 'jobs-list' });
  const more = h('div', { class: 'more' });
  main.replaceChildren(h('h1', { tabindex: -1 }, 'Jobs'), filterForm(filters, apply), meta, list, more);

  async function refresh() {
    const r = await ctx.read(() => listJobs({ ...filters, limit: 50 }));
    if (!r) return;
    first = r.jobs;
    if (!older.length) next = r.next;
    render();
  }

  async function loadOlder() {
    const r = await ctx.read(() => listJobs({ ...filters, limit: 50, before: next }));
    if (!r) return;
    older.push(...r.jobs);
    next = r.next;
    render();
  }

  function render() {
    const lowest = first.at(-1)?.id ?? Infinity;
    const jobs = [...first, ...older.filter((j) => j.id < lowest)];
    meta.textContent = `${jobs.length} job${jobs.length === 1 ? '' : 's'}, newest first · live, updated ${new Date().toLocaleTimeString()}`;
    const text = JSON.stringify(jobs);
    // running jobs' durations tick
    if (text !== shown || jobs.some((j) => j.state === 'running')) {
      shown = text;
      replaceContent(list, jobsTable(jobs));
    }
    replaceContent(more, next ? h('button', { type: 'button', 'data-key': 'older', onclick: loadOlder }, 'Load older jobs') : null);
  }

  return ctx.every(2000, refresh);
}

function facts(job) {
  const rows = [
    ['State', [badge(job.state)]],
    ['Type', job.type],
    ['Target', targetLink(job.target)],
    ['Source', job.source],
    job.parentId ? ['Part of', h('a', { href: `#/jobs/${job.parentId}` }, `job #${job.parentId}`)] : null,
    job.requestedBy ? ['Requested by', h('span', { class: 'code' }, `token ${job.requestedBy}…`)] : null,
    ['Created', time(job.createdAt)],
    ['Started', time(job.startedAt)],
    ['Finished', time(job.finishedAt)],
    ['Duration', duration(job.startedAt, job.finishedAt)],
    ...Object.entries(job.params ?? {}).map(([k, v]) => [k, h('span', { class: 'code' }, String(v))]),
  ].filter(Boolean);
  return h('dl', { class: 'facts' }, rows.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
}

const json = (v) => JSON.stringify(v, null, 2);

function steps(job) {
  if (!job.steps.length) return h('p', { class: 'muted' }, job.state === 'queued' ? 'Not started yet.' : 'No steps recorded.');
  return h(
    'ol',
    { class: 'steps' },
    job.steps.map((s) =>
      h(
        'li',
        { 'data-step': s.name, 'data-state': s.state },
        h(
          'div',
          { class: 'step-head' },
          h('h3', {}, s.name),
          badge(s.state),
          h('span', { class: 'muted' }, s.startedAt ? ['started ', time(s.startedAt), ' · ', duration(s.startedAt, s.finishedAt)] : ''),
        ),
        s.output ? h('pre', { class: 'output', tabindex: 0, 'aria-label': `Output of step ${s.name}` }, s.output) : null,
        s.detail && Object.keys(s.detail).length
          ? h('details', { 'data-key': `detail-${s.name}` }, h('summary', {}, 'Detail'), h('pre', {}, json(s.detail)))
          : null,
      ),
    ),
  );
}

/** #/jobs/:id */
export function jobView(main, ctx, id) {
  const heading = h('h1', { tabindex: -1 }, `Job #${id}`);
  const body = h('div', { class: 'job' });
  main.replaceChildren(h('p', {}, h('a', { href: '#/jobs' }, '← All jobs')), heading, body);
  let shown = '';
  let state = null;
  let canceling = false;

  const cancel = async () => {
    canceling = true;
    const job = await ctx.act(() => cancelJob(id));
    canceling = !!job;
    if (job) announce(job.state === 'canceled' ? `Job ${id} canceled` : `Cancel of job ${id} requested: it stops at its next step`);
    await refresh();
  };

  function render(job) {
    heading.textContent = `Job #${job.id}: ${job.type} of ${targetText(job.target)}`;
    document.title = `Job #${job.id} ${job.state} · swarm-utils`;
    const live = !FINAL.includes(job.state);
    replaceContent(
      body,
      facts(job),
      live
        ? h(
            'p',
            {},
            h('button', { type: 'button', class: 'danger', 'data-key': 'cancel', onclick: cancel, disabled: canceling }, canceling ? 'Cancel requested…' : 'Cancel job'),
            h('span', { class: 'muted' }, ' A running job stops at its next step and compensates (a stopped service is started again).'),
          )
        : null,
      job.error ? h('div', { class: 'errorbox' }, h('h2', {}, 'Error'), h('p', {}, h('strong', { class: 'code' }, job.error.code), ' ', job.error.message)) : null,
      h('h2', {}, 'Steps'),
      steps(job),
      job.result !== null && job.result !== undefined ? [h('h2', {}, 'Result'), resultView(job)] : null,
    );
  }

  async function refresh() {
    const job = await ctx.read(() => getJob(id), { forbiddenToPrompt: false });
    // a job this token may not see (or that does not exist) will not appear: stop asking
    if (!job) return ![403, 404].includes(ctx.lastError?.status);
    if (state && state !== job.state) announce(`Job ${job.id} is ${job.state}`);
    state = job.state;
    const text = JSON.stringify(job);
    if (text !== shown || !FINAL.includes(job.state)) {
      shown = text;
      render(job);
    }
    // a finished job does not change any more: stop polling
    return !FINAL.includes(job.state);
  }
  return ctx.every(1000, refresh);
}
