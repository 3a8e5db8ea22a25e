// The file list: newest first, a page at a time; download, rename, delete.

import { ApiError, call, networkError, qs } from './api.js';
import { bytes, date, displayName, el } from './format.js';

export const PAGE_SIZE = 20;

const $ = (id) => document.getElementById(id);

let offset = 0;
let total = 0;

/** Shows a message in the list's error line (or hides it). */
function showError(message) {
  const p = $('files-error');
  p.textContent = message || '';
  p.hidden = !message;
}

/** Loads and shows the current page (the previous one if this one emptied). */
export async function loadFiles() {
  showError('');
  let page;
  try {
    page = await call('GET', `/file/query?${qs({ limit: PAGE_SIZE, offset })}`);
    if (page.files.length === 0 && offset > 0 && page.total > 0) {
      offset = Math.max(0, Math.floor((page.total - 1) / PAGE_SIZE) * PAGE_SIZE);
      page = await call('GET', `/file/query?${qs({ limit: PAGE_SIZE, offset })}`);
    }
  } catch (e) {
    showError(e.message);
    return;
  }
  total = page.total;
  const list = $('files');
  list.replaceChildren(...page.files.map(fileRow));
  $('files-empty').hidden = total !== 0;
  $('pager').hidden = total <= PAGE_SIZE;
  $('page-prev').disabled = offset === 0;
  $('page-next').disabled = offset + PAGE_SIZE >= total;
  const last = Math.min(offset + page.files.length, total);
  $('page-info').textContent = total ? `${offset + 1}–${last} of ${total}` : '';
}

export function setupFiles(onChanged) {
  $('page-prev').addEventListener('click', () => {
    offset = Math.max(0, offset - PAGE_SIZE);
    loadFiles();
  });
  $('page-next').addEventListener('click', () => {
    if (offset + PAGE_SIZE < total) offset += PAGE_SIZE;
    loadFiles();
  });
  filesChanged = onChanged;
}

let filesChanged = () => {};

function fileRow(f) {
  const name = el('span', { class: 'name' }, displayName(f.filename));
  const meta = el(
    'span',
    { class: 'meta' },
    el('span', { class: 'size' }, bytes(f.filesize)),
    ' · ',
    el('time', { datetime: new Date(f.uploaded_at * 1000).toISOString() }, date(f.uploaded_at)),
  );
  const row = el('li', { class: 'file', 'data-id': f.id, 'data-hash': f.filehash, 'data-name': f.filename });
  const status = el('p', { class: 'error row-error', role: 'alert', hidden: true });
  const actions = el(
    'div',
    { class: 'actions' },
    el('button', { type: 'button', class: 'secondary', 'aria-label': `Download ${displayName(f.filename)}`, onclick: (e) => download(f, e.currentTarget, status) }, 'Download'),
    el('button', { type: 'button', class: 'secondary', 'aria-label': `Rename ${displayName(f.filename)}`, onclick: () => startRename(f, row, status) }, 'Rename'),
    el('button', { type: 'button', class: 'danger', 'aria-label': `Delete ${displayName(f.filename)}`, onclick: () => remove(f, status) }, 'Delete'),
  );
  row.append(el('div', { class: 'what' }, name, meta), actions, status);
  return row;
}

function rowError(status, message) {
  status.textContent = message || '';
  status.hidden = !message;
}

/**
 * Downloads without putting the bearer token in a URL. Preferred: a
 * short-lived signed URL from POST /file/downloadurl, which the browser saves
 * straight to disk. Servers without that route: the bytes are fetched with
 * the bearer header as a blob (held in memory) and saved via an object URL.
 */
async function download(f, button, status) {
  rowError(status, '');
  button.disabled = true;
  const label = button.textContent;
  button.textContent = 'Downloading…';
  try {
    const signed = await signedUrl(f);
    if (signed) {
      const foreign = new URL(signed, location.href).origin !== location.origin;
      // `download` only works on this origin; a store's presigned URL opens in a new tab.
      save(signed, f.filename, foreign);
      return;
    }
    const res = await call('GET', `/file/download?${qs({ id: f.id })}`, { raw: true });
    let blob;
    try {
      blob = await res.blob();
    } catch {
      throw networkError();
    }
    const url = URL.createObjectURL(blob);
    save(url, f.filename, false);
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
  } catch (e) {
    rowError(status, e instanceof ApiError ? e.message : String(e));
  } finally {
    button.disabled = false;
    button.textContent = label;
  }
}

/** A signed URL valid for a minute, or null when the server has no such route. */
async function signedUrl(f) {
  try {
    const res = await call('POST', `/file/downloadurl?${qs({ id: f.id, expires_in: 60 })}`);
    return res.url;
  } catch (e) {
    if (e instanceof ApiError && ['NOT_FOUND', 'METHOD_NOT_ALLOWED'].includes(e.code)) return null;
    throw e;
  }
}

function save(url, filename, newTab) {
  const a = el('a', { href: url, download: newTab ? undefined : filename, hidden: true });
  if (newTab) {
    a.target = '_blank';
    a.rel = 'noopener noreferrer';
  }
  document.body.append(a);
  a.click();
  a.remove();
}

function startRename(f, row, status) {
  rowError(status, '');
  const what = row.querySelector('.what');
  const id = `rename-${f.id}`;
  const input = el('input', { id, name: 'filename', value: f.filename, required: true, maxlength: 255 });
  const form = el(
    'form',
    { class: 'rename' },
    el('label', { for: id }, `New name for ${displayName(f.filename)}`),
    input,
    el('div', { class: 'row' },
      el('button', { type: 'submit' }, 'Save'),
      el('button', { type: 'button', class: 'secondary', onclick: () => form.replaceWith(what) }, 'Cancel')),
  );
  form.addEventListener('keydown', (e) => {
    if (e.key === 'Escape') form.replaceWith(what);
  });
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const filename = input.value.trim();
    if (!filename) {
      rowError(status, 'A file name cannot be empty.');
      return;
    }
    try {
      await call('POST', '/file/rename', { json: { id: f.id, filename } });
      await loadFiles();
      filesChanged();
    } catch (err) {
      rowError(status, err.message);
    }
  });
  what.replaceWith(form);
  input.focus();
  input.select();
}

async function remove(f, status) {
  rowError(status, '');
  if (!(await confirmDelete(displayName(f.filename)))) return;
  try {
    await call('DELETE', `/file/delete?${qs({ id: f.id })}`);
    await loadFiles();
    filesChanged();
  } catch (e) {
    rowError(status, e.message);
  }
}

/** Asks in the page's own dialog (keyboard-usable, Escape cancels). */
function confirmDelete(name) {
  const dialog = $('confirm');
  $('confirm-text').textContent = `“${name}” will be removed from your files. This cannot be undone.`;
  dialog.returnValue = 'cancel';
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => resolve(dialog.returnValue === 'ok'), { once: true });
    dialog.showModal();
    $('confirm-cancel').focus();
  });
}
