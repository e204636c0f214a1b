// The restore dialog: which archive (named in full), into which node's volume, a safety backup first
// (on by default), and the service's name typed to confirm; the submit button stays disabled until it matches.
import { getStatus, listBackups } from './api.js';
import { archiveFacts, submitFrom } from './dialog.js';
import { bytes, h, replaceContent } from './dom.js';

/** the archives the dialog offers (the newest) */
const LIMIT = 200;

/** a dialog opened later replaces this one's content: answers that arrive after that are dropped */
let opened = 0;

/** the nodes that run a task of the service now (from GET /service/status); null when the token may not read it */
async function taskNodes(service) {
  try {
    const status = await getStatus(service);
    return [...new Set(status.tasks.filter((t) => t.state === 'running' && t.desiredState === 'running').map((t) => t.node))].sort();
  } catch {
    return null;
  }
}

const localTime = (iso) => new Date(iso).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
const optionText = (a) => `${localTime(a.time)} · ${a.node} · ${bytes(a.size)}`;

/**
 * Opens the restore dialog of `service`; `archive` (from the archives list) is the one chosen at first,
 * else the newest archive made on the node the service runs on, else the newest.
 */
export async function openRestore(service, ctx, { archive } = {}) {
  const dialog = document.getElementById('dialog');
  const mine = ++opened;
  const title = h('h2', { id: 'dialog-title' }, `Restore service ${service}`);
  const close = h('button', { type: 'button', onclick: () => dialog.close() }, 'Cancel');
  dialog.setAttribute('aria-labelledby', 'dialog-title');
  dialog.replaceChildren(title, h('p', { class: 'muted', role: 'status' }, 'Loading the archives…'), h('div', { class: 'buttons' }, close));
  if (!dialog.open) dialog.showModal();
  close.focus();

  let listing;
  let nodes;
  try {
    [listing, nodes] = await Promise.all([listBackups({ service, limit: LIMIT }), taskNodes(service)]);
  } catch (err) {
    if (mine !== opened || !dialog.open) return;
    if (err.status === 401) {
      dialog.close();
      ctx.fail(err);
      return;
    }
    dialog.replaceChildren(title, h('p', { class: 'error', role: 'alert' }, `${err.message} (${err.code})`), h('div', { class: 'buttons' }, close));
    return;
  }
  if (mine !== opened || !dialog.open) return;
  const archives = listing.backups;
  if (!archives.length) {
    dialog.replaceChildren(title, h('p', { role: 'alert' }, `No archive of ${service}’s volumes in the bucket: there is nothing to restore.`), h('div', { class: 'buttons' }, close));
    return;
  }
  const first = archives.find((a) => a.key === archive?.key) ?? (nodes?.length === 1 && archives.find((a) => a.node === nodes[0])) ?? archives[0];
  dialog.replaceChildren(restoreForm(service, ctx, { dialog, archives, first, nodes, close, title }));
  dialog.querySelector('#restore-archive').focus();
}

function restoreForm(service, ctx, { dialog, archives, first, nodes, close, title }) {
  const byVolume = new Map();
  for (const a of archives) byVolume.set(a.volume, [...(byVolume.get(a.volume) ?? []), a]);
  const select = h(
    'select',
    { id: 'restore-archive', name: 'key', 'aria-describedby': 'restore-archive-facts' },
    [...byVolume.keys()].sort().map((volume) =>
      h('optgroup', { label: `volume ${volume}` }, byVolume.get(volume).map((a) => h('option', { value: a.key, selected: a.key === first.key }, optionText(a)))),
    ),
  );
  const chosen = () => archives.find((a) => a.key === select.value);
  const facts = h('div', { id: 'restore-archive-facts', 'aria-live': 'polite' });
  const where = h('p', { class: 'where' });
  // several nodes run the service, each with its own volume: the API needs to know which one
  const nodeSelect =
    nodes && nodes.length > 1
      ? h('select', { id: 'restore-node', name: 'node', 'aria-required': 'true' }, h('option', { value: '' }, 'choose a node'), nodes.map((n) => h('option', { value: n }, n)))
      : null;
  const showArchive = () => {
    const a = chosen();
    replaceContent(facts, archiveFacts(a));
    const node = nodes?.length === 1 ? nodes[0] : nodeSelect?.value;
    const on = node ? ` on node ${node}` : nodes?.length ? ' on the node chosen below' : ' on the node of its last task';
    where.textContent = `The content of volume ${a.volume}${on} is replaced by this archive of ${localTime(a.time)}: files that are not in it are deleted.`;
  };
  select.addEventListener('change', showArchive);
  nodeSelect?.addEventListener('change', showArchive);
  showArchive();

  const safety = h('input', { id: 'restore-safety', name: 'safetyBackup', type: 'checkbox', checked: true, 'aria-describedby': 'restore-safety-hint' });
  const confirm = h('input', {
    id: 'restore-confirm',
    name: 'confirm',
    type: 'text',
    autocomplete: 'off',
    spellcheck: 'false',
    autocapitalize: 'off',
    'aria-describedby': 'restore-confirm-hint',
  });
  const submit = h('button', { type: 'submit', class: 'danger', disabled: true }, 'Restore');
  const error = h('p', { class: 'error', role: 'alert' });
  const matches = () => confirm.value === service;
  confirm.addEventListener('input', () => {
    submit.disabled = !matches();
  });

  return h(
    'form',
    {
      class: 'restore',
      onsubmit: async (e) => {
        e.preventDefault();
        if (!matches()) return;
        const a = chosen();
        const body = { type: 'restore', service, volume: a.volume, key: a.key, safetyBackup: safety.checked };
        if (nodeSelect) {
          nodeSelect.setAttribute('aria-invalid', String(!nodeSelect.value));
          if (!nodeSelect.value) {
            error.textContent = 'Choose the node whose volume is restored.';
            nodeSelect.focus();
            return;
          }
          body.node = nodeSelect.value;
        }
        submit.disabled = true;
        error.textContent = '';
        await submitFrom(dialog, body, error, ctx);
        submit.disabled = !matches();
      },
    },
    title,
    h(
      'p',
      {},
      `Stops ${service} (scaled to 0), replaces the content of one of its volumes with an archive from the bucket, and starts it again. The archive’s own file count is checked after the swap.`,
    ),
    h('div', { class: 'field' }, h('label', { for: 'restore-archive' }, 'Archive'), select),
    facts,
    nodeSelect ? h('div', { class: 'field' }, h('label', { for: 'restore-node' }, 'Node whose volume is restored'), nodeSelect) : null,
    where,
    h(
      'div',
      { class: 'field check' },
      h('label', { for: 'restore-safety' }, safety, ' Back up the current content first (safety backup)'),
      h('p', { class: 'hint', id: 'restore-safety-hint' }, 'A normal backup of the volume as it is now, taken while the service is stopped, so this restore can be undone.'),
    ),
    h(
      'div',
      { class: 'field' },
      h('label', { for: 'restore-confirm' }, 'Type the service name to confirm'),
      confirm,
      h('p', { class: 'hint', id: 'restore-confirm-hint' }, `Type ${service} exactly. The Restore button stays disabled until it matches.`),
    ),
    error,
    h('div', { class: 'buttons' }, submit, close),
  );
}
