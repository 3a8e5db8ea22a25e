// A file's history: the dialog "History" opens from a file's row. It lists
// the file's versions (the contents it had before an upload, a move, a copy
// or a restore replaced them), newest first: when each was replaced, its
// size, who replaced it, its label and whether it is pinned. Each version
// downloads (with the bearer header, as a blob: versions have no signed
// URLs), restores (the file's content now becomes a version in turn, and
// the folder view is refreshed), pins or unpins with a label (typed in the
// row) and deletes after a confirmation.

import { ApiError, call, networkError, qs } from './api.js';
import { bytes, date, displayName, el } from './format.js';

const $ = (id) => document.getElementById(id);

/** The open dialog's file and callbacks; `loads` drops answers to older lists. */
const open = { file: null, loads: 0, confirmAsk: null, changed: () => {} };

function showError(message) {
  $('history-error').textContent = message || '';
  $('history-error').hidden = !message;
}

function note(message) {
  $('history-note').textContent = message || '';
  $('history-note').hidden = !message;
}

/**
 * Opens the history of file `f` ({id, name, size, mtime}). `confirmAsk` asks
 * before a delete; `changed()` runs after a restore (the folder view and the
 * usage change).
 */
export function openHistory(f, { confirmAsk, changed }) {
  open.file = f;
  open.confirmAsk = confirmAsk;
  open.changed = changed;
  $('history-title').textContent = `History of “${displayName(f.name)}”`;
  showError('');
  note('');
  $('history').showModal();
  $('history-close').focus();
  return loadVersions();
}

async function loadVersions() {
  const load = ++open.loads;
  const f = open.file;
  $('history-none').hidden = true;
  $('history-list').replaceChildren(el('li', { class: 'muted' }, 'Loading…'));
  let list;
  try {
    list = await call('GET', `/file/versions?${qs({ id: f.id })}`);
  } catch (e) {
    if (load !== open.loads) return;
    $('history-list').replaceChildren();
    showError(e.message);
    return;
  }
  if (load !== open.loads) return;
  $('history-none').hidden = list.versions.length !== 0;
  $('history-list').replaceChildren(...list.versions.map(versionRow));
}

/** “replaced 7 Dec 2026, 05:30”, for labels. */
const when = (v) => date(v.replaced_at);

function versionRow(v) {
  const f = open.file;
  const status = el('p', { class: 'error row-error', role: 'alert', hidden: true });
  const row = el('li', { class: 'entry version', 'data-version': v.version, 'data-pinned': String(v.pinned) });
  const title = el(
    'span',
    { class: 'name' },
    'Replaced ',
    el('time', { datetime: new Date(v.replaced_at * 1000).toISOString() }, when(v)),
  );
  const meta = el('span', { class: 'meta' }, el('span', { class: 'size' }, bytes(v.size)), ' · by ', el('span', { class: 'author' }, v.author.name));
  const marks = el('span', { class: 'meta' });
  if (v.pinned) marks.append(el('span', { class: 'pinned' }, 'Pinned'));
  if (v.label) {
    if (v.pinned) marks.append(' · ');
    marks.append(el('span', { class: 'label' }, v.label));
  }
  const what = el('div', { class: 'what' }, title, meta);
  if (marks.childNodes.length) what.append(marks);
  const label = `the version replaced ${when(v)}`;
  const actions = el(
    'div',
    { class: 'actions' },
    el('button', { type: 'button', class: 'secondary', 'aria-label': `Download ${label}`, onclick: (ev) => download(v, ev.currentTarget, status) }, 'Download'),
    el('button', { type: 'button', class: 'secondary', 'aria-label': `Restore ${label}`, onclick: (ev) => restore(v, ev.currentTarget, status) }, 'Restore'),
    v.pinned
      ? el('button', { type: 'button', class: 'secondary', 'aria-label': `Unpin ${label}`, onclick: () => pin(v, false, v.label, status) }, 'Unpin')
      : el('button', { type: 'button', class: 'secondary', 'aria-label': `Pin ${label}`, onclick: () => startPin(v, row, status) }, 'Pin…'),
    el('button', { type: 'button', class: 'danger', 'aria-label': `Delete ${label}`, onclick: () => remove(v, status) }, 'Delete'),
  );
  row.append(what, actions, status);
  row.title = `${displayName(f.name)}, ${bytes(v.size)}`;
  return row;
}

function rowError(status, message) {
  status.textContent = message || '';
  status.hidden = !message;
}

/** The version's bytes, fetched with the bearer header and saved under the file's name. */
async function download(v, button, status) {
  rowError(status, '');
  button.disabled = true;
  const text = button.textContent;
  button.textContent = 'Downloading…';
  try {
    const res = await call('GET', `/file/version/download?${qs({ id: open.file.id, version: v.version })}`, { raw: true });
    let blob;
    try {
      blob = await res.blob();
    } catch {
      throw networkError();
    }
    const url = URL.createObjectURL(blob);
    const a = el('a', { href: url, download: open.file.name, hidden: true });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
  } catch (e) {
    rowError(status, e instanceof ApiError ? e.message : String(e));
  } finally {
    button.disabled = false;
    button.textContent = text;
  }
}

async function restore(v, button, status) {
  rowError(status, '');
  note('');
  button.disabled = true;
  try {
    const file = await call('POST', '/file/version/restore', { json: { id: open.file.id, version: v.version } });
    open.file = { ...open.file, size: file.filesize, mtime: file.mtime };
    await loadVersions();
    note(`Restored the version replaced ${when(v)} (${bytes(v.size)}). The content the file had is now a version.`);
    open.changed();
  } catch (e) {
    rowError(status, e.message);
    button.disabled = false;
  }
}

/** Asks for a label in the row (optional; the version's own is the default), then pins. */
function startPin(v, row, status) {
  rowError(status, '');
  const actions = row.querySelector('.actions');
  const id = `pin-label-${v.version}`;
  const input = el('input', { id, name: 'label', value: v.label || '', maxlength: 255, autocomplete: 'off' });
  const cancel = () => form.replaceWith(actions);
  const form = el(
    'form',
    { class: 'rename pin' },
    el('label', { for: id }, 'Label (optional)'),
    input,
    el('div', { class: 'row' },
      el('button', { type: 'submit' }, 'Pin'),
      el('button', { type: 'button', class: 'secondary', onclick: cancel }, 'Cancel')),
  );
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const ok = await pin(v, true, input.value.trim() || null, status);
    if (!ok) input.focus();
  });
  form.addEventListener('keydown', (ev) => {
    if (ev.key === 'Escape') {
      // Closes the form, not the dialog.
      ev.preventDefault();
      cancel();
    }
  });
  actions.replaceWith(form);
  input.focus();
  input.select();
}

/** Pins (with `label`, null: none) or unpins (keeping the label); true when done. */
async function pin(v, pinned, label, status) {
  rowError(status, '');
  note('');
  try {
    await call('POST', '/file/version/pin', { json: { id: open.file.id, version: v.version, pinned, label: label || undefined } });
    await loadVersions();
    note(pinned ? 'Pinned: this version stays until you unpin or delete it.' : 'Unpinned: this version expires as versions do.');
    return true;
  } catch (e) {
    rowError(status, e.message);
    return false;
  }
}

async function remove(v, status) {
  rowError(status, '');
  note('');
  const ok = await open.confirmAsk({
    title: 'Delete version?',
    text: `The version of “${displayName(open.file.name)}” replaced ${when(v)} (${bytes(v.size)}) will be deleted for good. This cannot be undone.`,
    ok: 'Delete version',
  });
  if (!ok) return;
  try {
    await call('DELETE', `/file/version/delete?${qs({ id: open.file.id, version: v.version })}`);
    await loadVersions();
    note('Version deleted.');
    open.changed();
  } catch (e) {
    rowError(status, e.message);
  }
}

export function setupHistory() {
  $('history-close').addEventListener('click', () => $('history').close());
  $('history').addEventListener('close', () => {
    open.loads += 1;
    open.file = null;
  });
}
