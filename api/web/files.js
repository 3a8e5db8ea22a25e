// The folder view and the trash view.
//
// Folder view: breadcrumbs, folders first then files, sorted by name, size or
// time (each way), a page at a time by cursor ("Load more"); new folder,
// rename, download, move (a dialog that browses folders, or dragging rows onto
// a folder row or a breadcrumb), multi-select with move and delete of the
// selection. Deleting sends to the trash. The open folder is in the URL
// (`/?folder=<id>`), so reload, back and forward work.
//
// "History" lists a file's versions (history.js): download, restore, pin, delete.
//
// Each file has an icon by type; clicking an image, audio, video, PDF or text
// file previews it in a dialog from a signed inline URL (nothing is
// downloaded first; video seeks with Range). "Share" opens the share dialog
// (share.js) for a row, or for a selection of one. The search box lists the
// caller's files and folders whose name contains what is typed, with their
// paths, a page at a time; clearing it shows the folder again.
//
// Trash view (`/?view=trash`): what was deleted, where a restore puts it and
// when the server purges it; restore, delete for good, empty.

import { ApiError, call, networkError, qs } from './api.js';
import { bytes, date, displayName, el } from './format.js';
import { icon, openPreview, previewable } from './preview.js';
import { openHistory } from './history.js';
import { openShare } from './share.js';

export const PAGE_SIZE = 50;

/** The type of a drag of entries inside the page (files from the desktop come as 'Files'). */
const DRAG_TYPE = 'application/x-pan-entries';

const $ = (id) => document.getElementById(id);

const SORTS = ['name', 'size', 'time'];

const state = {
  /** The open folder's id; null: the root. */
  folder: null,
  /** Its path, `/` for the root. */
  path: '/',
  /** Its parent's id ('' for the root), when it has one. */
  parent: null,
  /** Entries shown, in the server's order. */
  entries: [],
  /** `next_cursor` of the last page, null when all are shown. */
  cursor: null,
  sort: SORTS.includes(localStorage.getItem('pan.sort')) ? localStorage.getItem('pan.sort') : 'name',
  order: localStorage.getItem('pan.order') === 'desc' ? 'desc' : 'asc',
  /** Selected entries by id. */
  selected: new Map(),
  /** Bumped by every load: answers to older ones are dropped. */
  loads: 0,
};

/** Folder ids by path, learnt from listings (for the breadcrumbs); cleared when folders move. */
const knownPaths = new Map();

/** Entries being dragged inside the page (dataTransfer cannot be read during dragover). */
let dragging = null;

let hooks = { changed: () => {}, folderShown: () => {}, upload: () => {}, navigate: () => {} };

/** The open folder, `{id, path}`, for uploads. */
export function currentFolder() {
  return { id: state.folder, path: state.path };
}

export const folderHref = (id) => (id ? `/?${qs({ folder: id })}` : '/');

function showError(message) {
  const p = $('files-error');
  p.textContent = message || '';
  p.hidden = !message;
}

/** A note after an action (“Moved 2 items to /a”), read out by screen readers. */
function note(message) {
  $('files-note').textContent = message || '';
  $('files-note').hidden = !message;
}

// ---- the folder view ----------------------------------------------------------

/** Opens folder `id` (null: the root), as the URL says. */
export async function showFolder(id) {
  endSearch();
  if (id !== state.folder) {
    state.selected.clear();
    note('');
  }
  state.folder = id || null;
  await reload();
}

/** Loads the first page again (after a change); keeps the selection of what is still there. */
export async function reload() {
  const load = ++state.loads;
  showError('');
  let page;
  try {
    page = await listPage(null);
  } catch (e) {
    if (load !== state.loads) return;
    state.entries = [];
    state.cursor = null;
    drawList();
    showError(e.message);
    return;
  }
  if (load !== state.loads) return;
  state.path = page.path;
  state.parent = page.folder ? page.folder.parent || '' : null;
  if (page.folder) knownPaths.set(page.path, page.folder.id);
  state.entries = page.entries;
  state.cursor = page.next_cursor || null;
  const ids = new Set(state.entries.map((e) => e.id));
  for (const id of [...state.selected.keys()]) if (!ids.has(id)) state.selected.delete(id);
  drawCrumbs();
  drawList();
  hooks.folderShown(currentFolder(), page.folder ? page.folder.name : null);
}

function listPage(cursor) {
  const params = { sort: state.sort, order: state.order, limit: PAGE_SIZE };
  if (state.folder) params.id = state.folder;
  else params.path = '/';
  if (cursor) params.cursor = cursor;
  return call('GET', `/folder/list?${qs(params)}`);
}

async function loadMore() {
  if (!state.cursor) return;
  const load = state.loads;
  const button = $('load-more');
  button.disabled = true;
  try {
    const page = await listPage(state.cursor);
    if (load !== state.loads) return;
    state.entries.push(...page.entries);
    state.cursor = page.next_cursor || null;
    const list = $('files');
    list.append(...page.entries.map(entryRow));
    drawChrome();
  } catch (e) {
    showError(e.message);
  } finally {
    button.disabled = false;
  }
}

function drawList() {
  $('files').replaceChildren(...state.entries.map(entryRow));
  drawChrome();
}

/** Everything around the rows: empty note, load more, sort buttons, selection bar. */
function drawChrome() {
  for (const e of state.entries) {
    if (e.kind === 'folder') knownPaths.set(joinPath(state.path, e.name), e.id);
  }
  $('files-empty').hidden = state.entries.length !== 0 || !$('files-error').hidden;
  $('load-more').hidden = !state.cursor;
  $('files-count').textContent = state.entries.length
    ? `${state.entries.length}${state.cursor ? '+' : ''} item${state.entries.length === 1 && !state.cursor ? '' : 's'}`
    : '';
  for (const b of document.querySelectorAll('#sorts button')) {
    const on = b.dataset.sort === state.sort;
    b.setAttribute('aria-pressed', String(on));
    const arrow = b.querySelector('.arrow');
    arrow.textContent = on ? (state.order === 'asc' ? '↑' : '↓') : '';
    b.setAttribute('aria-label', `Sort by ${b.dataset.label}${on ? `, ${state.order === 'asc' ? 'ascending' : 'descending'}` : ''}`);
  }
  drawSelection();
}

function drawSelection() {
  const n = state.selected.size;
  $('selectbar').hidden = n === 0;
  $('sel-share').hidden = n !== 1;
  $('select-count').textContent = `${n} selected`;
  const all = $('select-all');
  all.checked = n > 0 && n === state.entries.length;
  all.indeterminate = n > 0 && n < state.entries.length;
  all.disabled = state.entries.length === 0;
  for (const box of document.querySelectorAll('#files input.pick')) {
    box.checked = state.selected.has(box.closest('li').dataset.id);
    box.closest('li').classList.toggle('selected', box.checked);
  }
}

const joinPath = (parent, name) => (parent === '/' ? `/${name}` : `${parent}/${name}`);

/** Breadcrumbs: the root, then each folder of the path; the ids of ancestors come from listings or /folder/stat. */
async function drawCrumbs() {
  const names = state.path.split('/').filter(Boolean);
  const crumbs = [{ name: 'Files', path: '/', id: '' }];
  let path = '/';
  for (const name of names) {
    path = joinPath(path, name);
    crumbs.push({ name, path, id: knownPaths.get(path) });
  }
  crumbs[crumbs.length - 1].id = state.folder || '';
  const load = state.loads;
  const missing = crumbs.filter((c) => c.id === undefined);
  if (missing.length) {
    drawCrumbList(crumbs);
    await Promise.all(missing.map(async (c) => {
      try {
        const entry = await call('GET', `/folder/stat?${qs({ path: c.path })}`);
        c.id = entry.id;
        knownPaths.set(c.path, entry.id);
      } catch {
        // Left as plain text: a reload draws it again.
      }
    }));
    if (load !== state.loads) return;
  }
  drawCrumbList(crumbs);
}

function drawCrumbList(crumbs) {
  $('crumbs').replaceChildren(...crumbs.map((c, i) => {
    const last = i === crumbs.length - 1;
    if (c.id === undefined) return el('li', {}, el('span', {}, displayName(c.name)));
    const a = el('a', { href: folderHref(c.id), 'data-nav': true, 'data-folder-id': c.id, 'aria-current': last ? 'page' : undefined }, displayName(c.name));
    if (!last) dropTarget(a, { id: c.id, path: c.path });
    return el('li', {}, a);
  }));
}

/**
 * When an entry changed, as its row shows it: a file's own modification time
 * (`mtime`, kept from the uploaded file), a folder's last rename or move.
 */
function modified(e) {
  const t = e.kind === 'file' && Number.isFinite(e.mtime) ? e.mtime : e.updated_at;
  return el('time', { class: 'modified', title: 'Modified', datetime: new Date(t * 1000).toISOString() }, date(t));
}

function entryRow(e) {
  const folder = e.kind === 'folder';
  const label = displayName(e.name);
  const row = el('li', {
    class: `entry ${folder ? 'folder' : 'file'}`,
    'data-id': e.id,
    'data-kind': e.kind,
    'data-name': e.name,
    draggable: 'true',
  });
  const status = el('p', { class: 'error row-error', role: 'alert', hidden: true });
  const pick = el('input', {
    type: 'checkbox',
    class: 'pick',
    'aria-label': `Select ${label}`,
    onchange: (ev) => {
      if (ev.target.checked) state.selected.set(e.id, e);
      else state.selected.delete(e.id);
      drawSelection();
    },
  });
  const name = nameOf(e, status);
  const meta = el(
    'span',
    { class: 'meta' },
    folder ? 'Folder' : el('span', { class: 'size' }, bytes(e.size)),
    ' · ',
    modified(e),
  );
  const actions = el('div', { class: 'actions' });
  if (!folder) {
    actions.append(
      el('button', { type: 'button', class: 'secondary', 'aria-label': `Download ${label}`, onclick: (ev) => download(e, ev.currentTarget, status) }, 'Download'),
      el('button', { type: 'button', class: 'secondary', 'aria-label': `History of ${label}`, onclick: () => showHistory(e) }, 'History'),
    );
  }
  actions.append(
    el('button', { type: 'button', class: 'secondary', 'aria-label': `Share ${label}`, onclick: () => share(e) }, 'Share'),
    el('button', { type: 'button', class: 'secondary', 'aria-label': `Rename ${label}`, onclick: () => startRename(e, row, status) }, 'Rename'),
    el('button', { type: 'button', class: 'secondary', 'aria-label': `Move ${label}`, onclick: () => moveByDialog([e]) }, 'Move'),
    el('button', { type: 'button', class: 'danger', 'aria-label': `Delete ${label}`, onclick: () => removeEntries([e]) }, 'Delete'),
  );
  row.append(pick, icon(e), el('div', { class: 'what' }, name, meta), actions, status);

  row.addEventListener('dragstart', (ev) => {
    if (ev.target !== row) return;
    dragging = state.selected.has(e.id) ? [...state.selected.values()] : [e];
    ev.dataTransfer.setData(DRAG_TYPE, JSON.stringify(dragging.map((x) => x.id)));
    ev.dataTransfer.setData('text/plain', dragging.map((x) => x.name).join('\n'));
    ev.dataTransfer.effectAllowed = 'move';
    row.classList.add('dragged');
  });
  row.addEventListener('dragend', () => {
    dragging = null;
    row.classList.remove('dragged');
  });
  if (folder) dropTarget(row, { id: e.id, path: joinPath(state.path, e.name) });
  return row;
}

/** The file's versions in the history dialog; a restore refreshes the listing. */
function showHistory(e) {
  openHistory(e, {
    confirmAsk,
    changed: () => {
      reload();
      hooks.changed();
    },
  });
}

/**
 * The name of an entry as a control: a folder's opens it, a file's previews
 * it when the browser can show it; other files' names are plain text.
 */
function nameOf(e, status) {
  const label = displayName(e.name);
  if (e.kind === 'folder') return el('a', { class: 'name', href: folderHref(e.id), 'data-nav': true, draggable: 'false' }, label);
  if (!previewable(e.name)) return el('span', { class: 'name' }, label);
  return el('button', { type: 'button', class: 'name link', 'aria-label': `Preview ${label}`, onclick: () => preview(e, status) }, label);
}

/** How long a preview URL works: long enough to watch a film and seek in it. */
const PREVIEW_TTL = 4 * 3600;

/** Shows a file in the preview dialog from a signed inline URL. */
function preview(f) {
  const url = call('POST', `/file/downloadurl?${qs({ id: f.id, inline: true, expires_in: PREVIEW_TTL })}`).then((r) => r.url);
  openPreview({
    name: f.name,
    meta: [bytes(f.size), f.path].filter(Boolean).join(' · '),
    url,
    download: (ev) => download(f, ev.currentTarget, $('preview-error')),
  });
}

function share(e) {
  openShare(e);
}

/**
 * Makes `node` take drops: entries dragged inside the page move into folder
 * `dest` ({id, path}); files from the desktop are uploaded into it.
 */
function dropTarget(node, dest) {
  const accepts = (ev) => {
    const types = [...ev.dataTransfer.types];
    if (types.includes(DRAG_TYPE)) return dragging && !dragging.some((x) => x.id === dest.id);
    return types.includes('Files');
  };
  node.addEventListener('dragover', (ev) => {
    if (!accepts(ev)) return;
    ev.preventDefault();
    ev.stopPropagation();
    ev.dataTransfer.dropEffect = dragging ? 'move' : 'copy';
    node.classList.add('drop-here');
  });
  node.addEventListener('dragleave', (ev) => {
    if (!node.contains(ev.relatedTarget)) node.classList.remove('drop-here');
  });
  node.addEventListener('drop', (ev) => {
    node.classList.remove('drop-here');
    if (!accepts(ev)) return;
    ev.preventDefault();
    ev.stopPropagation();
    if (dragging) {
      const items = dragging;
      dragging = null;
      moveEntries(items, dest);
    } else {
      hooks.upload(ev.dataTransfer, dest);
    }
  });
}

function rowError(status, message) {
  status.textContent = message || '';
  status.hidden = !message;
}

function startRename(e, row, status) {
  rowError(status, '');
  const what = row.querySelector('.what');
  const id = `rename-${e.id}`;
  const input = el('input', { id, name: 'name', value: e.name, required: true, maxlength: 255 });
  const cancel = () => {
    form.replaceWith(what);
    row.draggable = true;
  };
  const form = el(
    'form',
    { class: 'rename' },
    el('label', { for: id }, `New name for ${displayName(e.name)}`),
    input,
    el('div', { class: 'row' },
      el('button', { type: 'submit' }, 'Save'),
      el('button', { type: 'button', class: 'secondary', onclick: cancel }, 'Cancel')),
  );
  form.addEventListener('keydown', (ev) => {
    if (ev.key === 'Escape') cancel();
  });
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const name = input.value.trim();
    if (!name) {
      rowError(status, 'A name cannot be empty.');
      return;
    }
    try {
      if (e.kind === 'folder') {
        await call('POST', '/folder/move', { json: { id: e.id, name } });
        knownPaths.clear();
      } else {
        await call('POST', '/file/rename', { json: { id: e.id, filename: name } });
      }
      await reload();
      hooks.changed();
    } catch (err) {
      rowError(status, err.message);
    }
  });
  row.draggable = false; // so the text in the field can be selected with the mouse
  what.replaceWith(form);
  input.focus();
  input.select();
}

/** Whether a rename is being typed (a refresh would throw it away). */
export function busy() {
  return Boolean(document.querySelector('#files form.rename'));
}

const plural = (n, one, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

function describe(items) {
  if (items.length === 1) return `“${displayName(items[0].name)}”`;
  const folders = items.filter((x) => x.kind === 'folder').length;
  const files = items.length - folders;
  return [folders && plural(folders, 'folder'), files && plural(files, 'file')].filter(Boolean).join(' and ');
}

/** Moves entries into folder `dest` ({id, path}); each failure is named. */
async function moveEntries(items, dest) {
  note('');
  showError('');
  const failures = [];
  let moved = 0;
  for (const item of items) {
    try {
      await call('POST', `/${item.kind}/move`, { json: { id: item.id, to: dest.id || '' } });
      moved += 1;
    } catch (e) {
      failures.push(`“${displayName(item.name)}”: ${e.message}`);
    }
  }
  if (items.some((x) => x.kind === 'folder')) knownPaths.clear();
  state.selected.clear();
  await reload();
  if (moved) note(`Moved ${moved === items.length ? describe(items) : plural(moved, 'item')} to ${dest.path}.`);
  if (failures.length) showError(`Not moved: ${failures.join(' · ')}`);
  hooks.changed();
}

async function moveByDialog(items) {
  const dest = await pickFolder(items);
  if (dest) await moveEntries(items, dest);
}

/** Sends entries to the trash, after a confirmation. */
async function removeEntries(items) {
  note('');
  const what = describe(items);
  const ok = await confirmAsk({
    title: items.length === 1 ? `Delete ${items[0].kind}?` : `Delete ${plural(items.length, 'item')}?`,
    text: `${what} will be moved to the trash${items.some((x) => x.kind === 'folder') ? ', with everything in them' : ''}. You can restore ${items.length === 1 ? 'it' : 'them'} from the trash until it is emptied.`,
    ok: 'Move to trash',
  });
  if (!ok) return;
  const failures = [];
  for (const item of items) {
    try {
      await call('DELETE', `/${item.kind === 'folder' ? 'folder' : 'file'}/delete?${qs({ id: item.id })}`);
      state.selected.delete(item.id);
    } catch (e) {
      failures.push(`“${displayName(item.name)}”: ${e.message}`);
    }
  }
  if (items.some((x) => x.kind === 'folder')) knownPaths.clear();
  await reload();
  if (failures.length < items.length) note(`Moved ${failures.length ? plural(items.length - failures.length, 'item') : what} to the trash.`);
  if (failures.length) showError(`Not deleted: ${failures.join(' · ')}`);
  hooks.changed();
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
      save(signed, f.name, foreign);
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
    save(url, f.name, false);
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

// ---- search -----------------------------------------------------------------------

const searching = { q: '', cursor: null, loads: 0, count: 0 };

/** Lists what matches `q` in place of the folder; an empty `q` shows the folder again. */
async function search(q) {
  if (!q) {
    endSearch();
    return;
  }
  const load = ++searching.loads;
  searching.q = q;
  searching.cursor = null;
  searching.count = 0;
  $('folder-body').hidden = true;
  $('search-view').hidden = false;
  $('search-error').hidden = true;
  $('search-status').textContent = `Searching for “${q}”…`;
  $('search-results').replaceChildren();
  $('search-more').hidden = true;
  await resultsPage(load);
}

async function resultsPage(load) {
  const params = { q: searching.q, limit: PAGE_SIZE };
  if (searching.cursor) params.cursor = searching.cursor;
  let page;
  try {
    page = await call('GET', `/folder/search?${qs(params)}`);
  } catch (e) {
    if (load !== searching.loads) return;
    $('search-error').textContent = e.message;
    $('search-error').hidden = false;
    $('search-status').textContent = `Search for “${searching.q}” failed.`;
    return;
  }
  if (load !== searching.loads) return;
  searching.cursor = page.next_cursor || null;
  searching.count += page.entries.length;
  $('search-results').append(...page.entries.map(resultRow));
  $('search-more').hidden = !searching.cursor;
  const n = searching.count;
  $('search-status').textContent = n
    ? `${n}${searching.cursor ? '+' : ''} result${n === 1 && !searching.cursor ? '' : 's'} for “${searching.q}”`
    : `Nothing is named like “${searching.q}”.`;
}

async function moreResults() {
  const button = $('search-more');
  button.disabled = true;
  try {
    await resultsPage(searching.loads);
  } finally {
    button.disabled = false;
  }
}

/** Leaves the results and shows the open folder. */
function endSearch() {
  if (!searching.q) return;
  searching.q = '';
  searching.loads += 1;
  $('search').value = '';
  $('search-view').hidden = true;
  $('folder-body').hidden = false;
  $('search-results').replaceChildren();
}

function resultRow(e) {
  const label = displayName(e.name);
  const status = el('p', { class: 'error row-error', role: 'alert', hidden: true });
  const parentPath = e.path.replace(/\/[^/]*$/, '') || '/';
  const where = el('a', { class: 'in-folder', href: folderHref(e.parent || null), 'data-nav': true, 'aria-label': `Open the folder ${displayName(parentPath)}` }, displayName(parentPath));
  const meta = el('span', { class: 'meta' }, e.kind === 'folder' ? 'Folder' : bytes(e.size), ' · in ', where);
  const actions = el('div', { class: 'actions' });
  if (e.kind === 'file') {
    actions.append(el('button', { type: 'button', class: 'secondary', 'aria-label': `Download ${label}`, onclick: (ev) => download(e, ev.currentTarget, status) }, 'Download'));
  }
  actions.append(el('button', { type: 'button', class: 'secondary', 'aria-label': `Share ${label}`, onclick: () => share(e) }, 'Share'));
  return el('li', { class: `entry result ${e.kind}`, 'data-id': e.id, 'data-kind': e.kind, 'data-name': e.name, 'data-path': e.path },
    icon(e), el('div', { class: 'what' }, nameOf(e, status), meta), actions, status);
}

// ---- new folder -------------------------------------------------------------------

function openNewFolder() {
  const form = $('new-folder-form');
  form.hidden = false;
  $('new-folder-error').hidden = true;
  $('new-folder-name').value = '';
  $('new-folder-name').focus();
}

function closeNewFolder() {
  $('new-folder-form').hidden = true;
  $('new-folder').focus();
}

async function createFolder(ev) {
  ev.preventDefault();
  const name = $('new-folder-name').value.trim();
  const error = $('new-folder-error');
  error.hidden = true;
  if (!name) {
    error.textContent = 'A folder name cannot be empty.';
    error.hidden = false;
    return;
  }
  const button = $('new-folder-form').querySelector('button[type=submit]');
  button.disabled = true;
  try {
    // Refuse a taken name: a second “Photos” next to the first is rarely meant.
    await call('POST', '/folder/create', { json: { name, parent: state.folder || undefined, on_conflict: 'refuse' } });
    $('new-folder-form').hidden = true;
    note(`Folder “${displayName(name)}” created.`);
    await reload();
    const row = [...document.querySelectorAll('#files li.folder')].find((li) => li.dataset.name === name);
    (row ? row.querySelector('a.name') : $('new-folder')).focus();
  } catch (e) {
    error.textContent = e.message;
    error.hidden = false;
  } finally {
    button.disabled = false;
  }
}

// ---- the move dialog --------------------------------------------------------------

/** Lets the user browse to a folder; resolves with `{id, path}`, or null when cancelled. */
function pickFolder(items) {
  const dialog = $('move');
  const moving = new Set(items.filter((x) => x.kind === 'folder').map((x) => x.id));
  const from = new Set(items.map((x) => x.parent || ''));
  let at = { id: state.folder || '', path: state.path, parent: state.parent };
  let load = 0;
  $('move-title').textContent = `Move ${describe(items)}`;

  const open = async (folder) => {
    const mine = ++load;
    $('move-error').hidden = true;
    // Nothing to click until the folder is shown: "Up" and "Move here" act on what is shown.
    $('move-up').disabled = true;
    $('move-ok').disabled = true;
    $('move-folders').replaceChildren(el('li', { class: 'muted' }, 'Loading…'));
    try {
      const params = { sort: 'name', order: 'asc', limit: 1000 };
      if (folder.id) params.id = folder.id;
      else params.path = '/';
      const folders = [];
      let page;
      do {
        page = await call('GET', `/folder/list?${qs(page && page.next_cursor ? { ...params, cursor: page.next_cursor } : params)}`);
        const some = page.entries.filter((x) => x.kind === 'folder');
        folders.push(...some);
        // Folders come first: a page with a file in it is the last one with folders.
        if (some.length < page.entries.length) break;
      } while (page.next_cursor);
      if (mine !== load) return;
      at = { id: folder.id, path: page.path, parent: page.folder ? page.folder.parent || '' : null };
      $('move-path').textContent = at.path;
      $('move-up').disabled = at.parent === null;
      $('move-ok').disabled = from.size === 1 && from.has(at.id);
      $('move-folders').replaceChildren(
        ...(folders.length ? folders.map((f) => el('li', {}, el('button', {
          type: 'button',
          class: 'secondary folder-pick',
          disabled: moving.has(f.id),
          title: moving.has(f.id) ? 'A folder cannot move into itself' : undefined,
          onclick: () => open({ id: f.id, path: joinPath(at.path, f.name) }),
        }, el('span', { class: 'icon folder', 'aria-hidden': 'true' }), displayName(f.name)))) : [el('li', { class: 'muted' }, 'No folders here.')]),
      );
    } catch (e) {
      if (mine !== load) return;
      $('move-folders').replaceChildren();
      $('move-error').textContent = e.message;
      $('move-error').hidden = false;
    }
  };

  $('move-up').onclick = () => at.parent !== null && open({ id: at.parent, path: at.path.replace(/\/[^/]*$/, '') || '/' });
  dialog.returnValue = 'cancel';
  open(at);
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => {
      load += 1;
      resolve(dialog.returnValue === 'ok' ? { id: at.id, path: at.path } : null);
    }, { once: true });
    dialog.showModal();
    $('move-cancel').focus();
  });
}

// ---- confirmation -------------------------------------------------------------------

/** Asks in the page's own dialog (keyboard-usable, Escape cancels). */
export function confirmAsk({ title, text, ok }) {
  const dialog = $('confirm');
  $('confirm-title').textContent = title;
  $('confirm-text').textContent = text;
  $('confirm-ok').textContent = ok;
  dialog.returnValue = 'cancel';
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => resolve(dialog.returnValue === 'ok'), { once: true });
    dialog.showModal();
    $('confirm-cancel').focus();
  });
}

// ---- set-up -------------------------------------------------------------------------

/**
 * Wires the folder view's controls. `changed()` after anything that changes
 * counts; `folderShown({id, path}, name)` after each listing; `upload(dataTransfer,
 * {id, path})` for files dropped on a folder.
 */
export function setupFiles(h) {
  hooks = { ...hooks, ...h };
  for (const b of document.querySelectorAll('#sorts button')) {
    b.addEventListener('click', () => {
      if (state.sort === b.dataset.sort) state.order = state.order === 'asc' ? 'desc' : 'asc';
      else {
        state.sort = b.dataset.sort;
        state.order = b.dataset.sort === 'name' ? 'asc' : 'desc';
      }
      localStorage.setItem('pan.sort', state.sort);
      localStorage.setItem('pan.order', state.order);
      reload();
    });
  }
  $('load-more').addEventListener('click', loadMore);
  $('select-all').addEventListener('change', (ev) => {
    state.selected.clear();
    if (ev.target.checked) for (const e of state.entries) state.selected.set(e.id, e);
    drawSelection();
  });
  $('sel-clear').addEventListener('click', () => {
    state.selected.clear();
    drawSelection();
    $('select-all').focus();
  });
  $('sel-move').addEventListener('click', () => moveByDialog([...state.selected.values()]));
  $('sel-share').addEventListener('click', () => {
    const [one] = state.selected.values();
    if (state.selected.size === 1) share(one);
  });
  $('search-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    search($('search').value.trim());
  });
  // Emptying the box (its × too) shows the folder again.
  $('search').addEventListener('input', () => {
    if (!$('search').value && searching.q) endSearch();
  });
  $('search').addEventListener('keydown', (ev) => {
    if (ev.key === 'Escape' && searching.q) {
      ev.preventDefault();
      $('search').value = '';
      endSearch();
    }
  });
  $('search-clear').addEventListener('click', () => {
    $('search').value = '';
    endSearch();
    $('search').focus();
  });
  $('search-more').addEventListener('click', moreResults);
  $('sel-delete').addEventListener('click', () => removeEntries([...state.selected.values()]));
  $('new-folder').addEventListener('click', openNewFolder);
  $('new-folder-form').addEventListener('submit', createFolder);
  $('new-folder-cancel').addEventListener('click', closeNewFolder);
  $('new-folder-form').addEventListener('keydown', (ev) => {
    if (ev.key === 'Escape') closeNewFolder();
  });
}

// ---- the trash ------------------------------------------------------------------------

const trash = { entries: [], cursor: null, loads: 0 };

function trashError(message) {
  $('trash-error').textContent = message || '';
  $('trash-error').hidden = !message;
}

function trashNote(message) {
  $('trash-note').textContent = message || '';
  $('trash-note').hidden = !message;
}

/** Shows the trash's first page and its usage. */
export async function showTrash() {
  const load = ++trash.loads;
  trashError('');
  trashUsage();
  let page;
  try {
    page = await call('GET', `/trash/list?${qs({ limit: PAGE_SIZE })}`);
  } catch (e) {
    if (load === trash.loads) trashError(e.message);
    return;
  }
  if (load !== trash.loads) return;
  trash.entries = page.entries;
  trash.cursor = page.next_cursor || null;
  $('trash').replaceChildren(...trash.entries.map(trashRow));
  drawTrashChrome();
}

async function trashUsage() {
  try {
    const info = await call('GET', '/usr/info');
    $('trash-usage').textContent = info.trash_count
      ? `${plural(info.trash_count, 'file')} in the trash, ${bytes(info.trash_bytes)} (counted in your space used).`
      : 'Nothing in the trash.';
  } catch (e) {
    trashError(e.message);
  }
}

function drawTrashChrome() {
  $('trash-none').hidden = trash.entries.length !== 0;
  $('trash-more').hidden = !trash.cursor;
  $('trash-empty').disabled = trash.entries.length === 0;
}

async function moreTrash() {
  if (!trash.cursor) return;
  const load = trash.loads;
  try {
    const page = await call('GET', `/trash/list?${qs({ limit: PAGE_SIZE, cursor: trash.cursor })}`);
    if (load !== trash.loads) return;
    trash.entries.push(...page.entries);
    trash.cursor = page.next_cursor || null;
    $('trash').append(...page.entries.map(trashRow));
    drawTrashChrome();
  } catch (e) {
    trashError(e.message);
  }
}

function trashRow(t) {
  const e = t.entry;
  const label = displayName(e.name);
  const status = el('p', { class: 'error row-error', role: 'alert', hidden: true });
  const row = el('li', { class: `entry trashed ${e.kind}`, 'data-id': e.id, 'data-kind': e.kind, 'data-name': e.name });
  const meta = el(
    'span',
    { class: 'meta' },
    e.kind === 'folder' ? 'Folder' : bytes(e.size),
    ' · deleted ',
    el('time', { datetime: new Date(t.trashed_at * 1000).toISOString() }, date(t.trashed_at)),
  );
  const where = el(
    'span',
    { class: 'meta' },
    'Restores to ',
    el('span', { class: 'restores-to' }, displayName(t.restores_to)),
    ' · deleted for good ',
    el('time', { class: 'purge-at', datetime: new Date(t.purge_at * 1000).toISOString() }, date(t.purge_at)),
  );
  row.append(
    el('span', { class: `icon ${e.kind}`, 'aria-hidden': 'true' }),
    el('div', { class: 'what' }, el('span', { class: 'name' }, label), meta, where),
    el('div', { class: 'actions' },
      el('button', { type: 'button', class: 'secondary', 'aria-label': `Restore ${label}`, onclick: () => restore(t, status) }, 'Restore'),
      el('button', { type: 'button', class: 'danger', 'aria-label': `Delete ${label} for good`, onclick: () => purge(t, status) }, 'Delete for good')),
    status,
  );
  return row;
}

async function restore(t, status) {
  rowError(status, '');
  trashNote('');
  try {
    const back = await call('POST', '/trash/restore', { json: { id: t.entry.id } });
    knownPaths.clear();
    await showTrash();
    const parentPath = back.path.replace(/\/[^/]*$/, '') || '/';
    trashNote(`Restored “${displayName(t.entry.name)}” to ${parentPath}${back.name !== t.entry.name ? ` as “${displayName(back.name)}”` : ''}.`);
    hooks.changed();
  } catch (e) {
    rowError(status, e.message);
  }
}

async function purge(t, status) {
  rowError(status, '');
  trashNote('');
  const ok = await confirmAsk({
    title: `Delete ${t.entry.kind} for good?`,
    text: `“${displayName(t.entry.name)}”${t.entry.kind === 'folder' ? ' and everything in it' : ''} will be deleted for good. This cannot be undone.`,
    ok: 'Delete for good',
  });
  if (!ok) return;
  try {
    await call('DELETE', `/trash/purge?${qs({ id: t.entry.id })}`);
    await showTrash();
    trashNote(`Deleted “${displayName(t.entry.name)}” for good.`);
    hooks.changed();
  } catch (e) {
    rowError(status, e.message);
  }
}

async function emptyTrash() {
  trashNote('');
  const ok = await confirmAsk({
    title: 'Empty the trash?',
    text: 'Everything in the trash will be deleted for good. This cannot be undone.',
    ok: 'Empty trash',
  });
  if (!ok) return;
  try {
    await call('DELETE', '/trash/empty');
    await showTrash();
    trashNote('The trash is empty now.');
    hooks.changed();
  } catch (e) {
    trashError(e.message);
  }
}

export function setupTrash() {
  $('trash-more').addEventListener('click', moreTrash);
  $('trash-empty').addEventListener('click', emptyTrash);
}
