// What the dialogs that start jobs share: submitting, and naming an archive.
import { submitJob } from './api.js';
import { bytes, h, time } from './dom.js';

/** the file name of an object key (the archive's name without the bucket path) */
export const baseName = (key) => key.split('/').at(-1);

/**
 * POST /jobs from a dialog: the job's view on success; a 401 back to the prompt; any other error as the
 * API's message and code in the dialog's alert (nothing was created).
 */
export async function submitFrom(dialog, body, error, ctx) {
  try {
    const job = await submitJob(body);
    dialog.close();
    ctx.navigate(`#/jobs/${job.id}`);
  } catch (err) {
    if (err.status === 401) {
      dialog.close();
      ctx.fail(err);
    } else error.textContent = err.code ? `${err.message} (${err.code})` : `The console failed: ${err.message}`;
  }
}

/** an archive of GET /backups named in full: key, volume, the node it was made on, time, size */
export function archiveFacts(a) {
  const rows = [
    ['Key', h('span', { class: 'code' }, a.key)],
    ['Volume', h('span', { class: 'code' }, a.volume)],
    ['Made on node', a.node],
    ['Time', time(a.time)],
    ['Size', h('span', { 'data-bytes': String(a.size) }, bytes(a.size))],
    a.files !== undefined ? ['Files', `${a.files} (${bytes(a.bytes)})`] : null,
    a.encrypted ? ['Encrypted', 'yes'] : null,
  ].filter(Boolean);
  return h('dl', { class: 'facts archive-facts' }, rows.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
}
