// Starting jobs from the console: one entry per job type, one dialog for all of them (restore has its own: restore.js).
import { archiveFacts, submitFrom } from './dialog.js';
import { h } from './dom.js';
import { openRestore } from './restore.js';

const who = (t) => (t.all ? 'all' : t.service ? `service ${t.service}` : `node ${t.node}`);

/**
 * What a button of each job type says and asks. A new job type is one more entry; `fields` become
 * labelled inputs whose non-empty values go into the POST /jobs body.
 */
export const ACTIONS = {
  backup: {
    label: 'Back up',
    title: (t) => (t.all ? 'Back up all services' : `Back up ${who(t)}`),
    text: (t) =>
      t.all
        ? 'Every service with swarm-utils.backup.enable=true that this token may back up is archived to S3, one job per service.'
        : `Archives the selected volumes of ${t.service} to S3 now, as its swarm-utils.backup labels say (exec, stop).`,
    fields: [],
  },
  clean: {
    label: 'Clean',
    title: (t) => (t.all ? 'Clean all nodes and services' : `Clean ${who(t)}`),
    text: (t) =>
      t.node
        ? `Prunes stopped containers, unused images and build cache on ${t.node}, as its labels allow. Volumes are never pruned.`
        : t.all
          ? 'Prunes every node this token may clean and runs the clean command of every service with swarm-utils.clean.enable=true. Volumes are never pruned.'
          : `Runs the swarm-utils.clean.exec command of ${t.service} in each of its running containers.`,
    fields: [],
  },
  update: {
    label: 'Update',
    title: (t) => `Update ${who(t)}`,
    text: (t) => `Rolls out a new image to ${t.service}, pinned by its registry digest.`,
    fields: [
      {
        name: 'image',
        label: 'Image',
        hint: 'Leave empty to resolve the current tag again: a changed digest is rolled out, an unchanged one restarted.',
        placeholder: 'registry.example.com/app:1.2',
        optional: true,
      },
    ],
  },
  restore: {
    label: 'Restore',
    title: (t) => `Restore ${who(t)}`,
    // its own dialog: the archive is chosen and named, and the service name typed to confirm
    open: (target, ctx, extra) => openRestore(target.service, ctx, extra),
  },
  drill: {
    label: 'Drill',
    title: (t, x = {}) =>
      t.all ? 'Drill all services' : x.archive ? `Drill an archive of ${who(t)}` : x.volume ? `Drill the newest archive of volume ${x.volume}` : `Drill ${who(t)}`,
    text: (t, x = {}) =>
      t.all
        ? 'Proves that the newest archive of each volume of every service this token may restore can be restored: each is downloaded and unpacked completely into a scratch volume, counted, and compared with what was recorded when it was made. The services are not touched.'
        : x.archive
          ? `Downloads this archive and unpacks it completely into a scratch volume, counts its files and bytes and compares them with what was recorded when it was made. ${t.service} is not touched.`
          : `Downloads the newest archive of ${x.volume ? `volume ${x.volume}` : `each volume of ${t.service}`} and unpacks it completely into a scratch volume, counts its files and bytes and compares them with what was recorded when it was made. ${t.service} is not touched.`,
    fields: [],
  },
};

/** the job types the console knows, in the order of their buttons */
export const JOB_TYPES = Object.keys(ACTIONS);

/** may this token start a job of `type` now: listed in a service's (or GET /services' `all`) actions without a refusal */
export const mayStart = (actions, type) => actions.some((x) => x.type === type && !x.refusal);

/** the part of a POST /jobs body an archive or a volume adds (drill, restore) */
export const archiveBody = ({ archive, volume } = {}) => (archive ? { volume: archive.volume, key: archive.key } : volume ? { volume } : {});

/** Opens the dialog of a job type on a target, its own (restore) or the common one. */
export function start(type, target, ctx, extra = {}) {
  const a = ACTIONS[type];
  if (a.open) return a.open(target, ctx, extra);
  return openAction(type, target, ctx, extra);
}

/**
 * Opens the dialog of one action on one target ({service} | {node} | {all: true}); `extra` names an
 * archive ({archive}) or a volume ({volume}) of the service (drill). A started job opens its own view;
 * an error answer stays in the dialog as the API's message.
 */
export function openAction(type, target, ctx, extra = {}) {
  const a = ACTIONS[type];
  const dialog = document.getElementById('dialog');
  const error = h('p', { class: 'error', role: 'alert' });
  const inputs = a.fields.map((f) => ({
    f,
    input: h('input', {
      id: `field-${f.name}`,
      name: f.name,
      type: 'text',
      placeholder: f.placeholder,
      autocomplete: 'off',
      spellcheck: 'false',
      required: !f.optional,
      'aria-describedby': f.hint ? `field-${f.name}-hint` : null,
    }),
  }));
  const startButton = h('button', { type: 'submit', class: 'primary' }, 'Start');
  const form = h(
    'form',
    {
      onsubmit: async (e) => {
        e.preventDefault();
        const body = { type, ...target, ...archiveBody(extra) };
        for (const { f, input } of inputs) if (input.value.trim()) body[f.name] = input.value.trim();
        startButton.disabled = true;
        error.textContent = '';
        await submitFrom(dialog, body, error, ctx);
        startButton.disabled = false;
      },
    },
    h('h2', { id: 'dialog-title' }, a.title(target, extra)),
    h('p', {}, a.text(target, extra)),
    extra.archive ? archiveFacts(extra.archive) : null,
    inputs.map(({ f, input }) =>
      h(
        'div',
        { class: 'field' },
        h('label', { for: input.id }, f.label, f.optional ? h('span', { class: 'muted' }, ' (optional)') : null),
        input,
        f.hint ? h('p', { class: 'hint', id: `${input.id}-hint` }, f.hint) : null,
      ),
    ),
    error,
    h('div', { class: 'buttons' }, startButton, h('button', { type: 'button', onclick: () => dialog.close() }, 'Cancel')),
  );
  dialog.setAttribute('aria-labelledby', 'dialog-title');
  dialog.replaceChildren(form);
  dialog.showModal();
  (inputs[0]?.input ?? startButton).focus();
}

/**
 * The buttons of the actions a token may take on a target, and, for those the API would refuse
 * now, the reason instead of a button.
 */
export function actionButtons(actions, target, ctx) {
  const known = actions.filter((x) => ACTIONS[x.type]);
  if (!known.length) return h('p', { class: 'muted' }, 'This token may start no job here.');
  const allowed = known.filter((x) => !x.refusal);
  return [
    allowed.length
      ? h(
          'div',
          { class: 'actions' },
          allowed.map((x) =>
            h(
              'button',
              { type: 'button', 'data-action': x.type, 'data-key': `action-${x.type}-${who(target)}`, onclick: () => start(x.type, target, ctx) },
              target.all ? ACTIONS[x.type].title(target) : [ACTIONS[x.type].label, h('span', { class: 'visually-hidden' }, ` ${who(target)}`)],
              '…',
            ),
          ),
        )
      : null,
    known
      .filter((x) => x.refusal)
      .map((x) => h('p', { class: 'refusal' }, h('strong', {}, `${ACTIONS[x.type].label}: `), `not available — ${x.refusal.message}`)),
  ];
}
