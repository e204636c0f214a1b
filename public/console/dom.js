// Small DOM helpers. Text from the API only ever becomes text nodes, never markup.

/**
 * h('a', { href: '#/jobs', class: 'x', onclick: fn, 'aria-label': 'y' }, 'text', child)
 * Attribute values of false/null/undefined are left out; true sets an empty attribute.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === false || v === null || v === undefined) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'value') el.value = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/**
 * Replaces the content of `el`, keeping keyboard focus on the element with the same `data-key` and
 * the open <details> open (live updates must not throw a keyboard or screen-reader user back to the top).
 */
export function replaceContent(el, ...children) {
  const active = document.activeElement;
  const key = active && el.contains(active) ? active.getAttribute('data-key') : null;
  const open = [...el.querySelectorAll('details[open][data-key]')].map((d) => d.getAttribute('data-key'));
  el.replaceChildren();
  append(el, children);
  for (const k of open) el.querySelector(`details[data-key="${CSS.escape(k)}"]`)?.setAttribute('open', '');
  if (key) el.querySelector(`[data-key="${CSS.escape(key)}"]`)?.focus();
}

/** a <time> with the local date and time, the ISO value in `datetime` */
export function time(iso) {
  if (!iso) return h('span', { class: 'muted' }, '—');
  const d = new Date(iso);
  return h('time', { datetime: iso, title: iso }, d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'medium' }));
}

export function duration(fromIso, toIso) {
  if (!fromIso) return '—';
  const ms = (toIso ? Date.parse(toIso) : Date.now()) - Date.parse(fromIso);
  if (ms < 1000) return `${Math.max(ms, 0)} ms`;
  const s = Math.round(ms / 1000);
  if (s < 120) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 120) return `${m} min ${s % 60} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

export function ago(iso) {
  const s = Math.round((Date.now() - Date.parse(iso)) / 1000);
  if (s < 60) return 'just now';
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 48 * 3600) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} days ago`;
}

export function bytes(n) {
  if (n === null || n === undefined) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) (v /= 1024), i++;
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

/** a state as text with a colour (the colour is never the only cue) */
export const badge = (state) => h('span', { class: `badge s-${state}` }, state);

export const targetText = (t) => (t.all ? 'all' : t.service ? `service ${t.service}` : `node ${t.node}`);

/** polite announcement for screen readers (the #status live region) */
export function announce(text) {
  const region = document.getElementById('status');
  region.textContent = '';
  // a fresh text node after a tick, so the same sentence is announced again
  setTimeout(() => (region.textContent = text), 50);
}
