// pan's web page: one HTML page whose script shows the view named by the URL
// (/ and /?folder=<id> the folder view, /?view=trash the trash, /?view=shares
// the user's share links, /usr/signin, /usr/signup, /file/upload, and
// /s/<link> a share link's public page, which needs no account). No
// framework, no build step.

import { call, qs, session, setSignedOutHandler } from './api.js';
import { bytes, date, displayName, duration, el, speed } from './format.js';
import { busy, confirmAsk, currentFolder, folderHref, reload, setupFiles, setupTrash, showFolder, showTrash } from './files.js';
import { setupHistory } from './history.js';
import { setupPreview } from './preview.js';
import { setupPublic, showPublic } from './public.js';
import { setupShares, showShares } from './share.js';
import { Upload, droppedItems, folderMaker, parallel, pickedItems, setParallel, unfinished } from './upload.js';

const $ = (id) => document.getElementById(id);

const VIEWS = {
  '/': { id: 'view-home', auth: true, title: 'Your files', show: showHome },
  trash: { id: 'view-trash', auth: true, title: 'Trash', show: showTrash },
  shares: { id: 'view-shares', auth: true, title: 'Shared links', show: showShares },
  public: { id: 'view-public', auth: false, public: true, title: 'Shared with you', show: showPublic },
  '/file/upload': { id: 'view-upload', auth: true, title: 'Upload', show: showUpload },
  '/usr/signin': { id: 'view-signin', auth: false, title: 'Sign in', show: () => $('signin-username').focus() },
  '/usr/signup': { id: 'view-signup', auth: false, title: 'Sign up', show: () => $('signup-username').focus() },
};

// ---- navigation -------------------------------------------------------------

function navigate(path, { replace = false } = {}) {
  if (replace) history.replaceState(null, '', path);
  else history.pushState(null, '', path);
  render();
}

/** A short note at the top of the next view (e.g. "Account created"). */
function flash(message) {
  const p = $('flash');
  p.textContent = message || '';
  p.hidden = !message;
}

let firstRender = true;

/** The view a URL names: a key of VIEWS. */
function viewOf(url) {
  if (url.pathname.startsWith('/s/')) return 'public';
  if (url.pathname === '/' && ['trash', 'shares'].includes(url.searchParams.get('view'))) return url.searchParams.get('view');
  return url.pathname in VIEWS ? url.pathname : '/';
}

function render() {
  const path = viewOf(new URL(location.href));
  const view = VIEWS[path];
  if (view.auth && !session.token) {
    navigate('/usr/signin', { replace: true });
    return;
  }
  for (const v of Object.values(VIEWS)) $(v.id).hidden = v !== view;
  // A share link's page shows nothing of accounts: no menu, no sign-in.
  const signedIn = Boolean(session.token) && !view.public;
  $('brand').hidden = Boolean(view.public);
  $('brand-public').hidden = !view.public;
  $('nav').hidden = !signedIn;
  $('who').hidden = !signedIn;
  $('who-name').textContent = signedIn ? session.username : '';
  for (const a of document.querySelectorAll('#nav a')) {
    if (viewOf(new URL(a.href)) === path) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  $('uploads').hidden = !['/', '/file/upload'].includes(path);
  for (const d of document.querySelectorAll('dialog[open]')) d.close();
  document.title = `${view.title} · pan`;
  if (!firstRender) $('main').focus({ preventScroll: true });
  firstRender = false;
  view.show();
}

document.addEventListener('click', (e) => {
  const a = e.target.closest('a[data-nav]');
  if (!a || e.ctrlKey || e.metaKey || e.shiftKey || e.button !== 0) return;
  e.preventDefault();
  const href = a.getAttribute('href');
  if (href !== location.pathname + location.search) flash('');
  navigate(href);
});
window.addEventListener('popstate', render);

setSignedOutHandler((message) => {
  session.clear();
  flash(`${message}`);
  navigate('/usr/signin', { replace: true });
});

// ---- sign up, sign in, sign out ---------------------------------------------------

function formError(id, message) {
  const p = $(id);
  p.textContent = message || '';
  p.hidden = !message;
}

/** Runs a form's submit with its button disabled; errors show in the form. */
function onSubmit(formId, errorId, handler) {
  const form = $(formId);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    formError(errorId, '');
    const button = form.querySelector('button[type=submit]');
    button.disabled = true;
    try {
      await handler(new FormData(form));
    } catch (err) {
      formError(errorId, err.message);
    } finally {
      button.disabled = false;
    }
  });
}

onSubmit('signup-form', 'signup-error', async (data) => {
  const username = String(data.get('username')).trim();
  const password = String(data.get('password'));
  await call('POST', '/usr/signup', { json: { username, password } });
  $('signup-form').reset();
  $('signin-username').value = username;
  flash(`Account “${username}” created. Sign in to start.`);
  navigate('/usr/signin');
  $('signin-password').focus();
});

onSubmit('signin-form', 'signin-error', async (data) => {
  const username = String(data.get('username')).trim();
  const password = String(data.get('password'));
  const res = await call('POST', '/usr/signin', { json: { username, password } });
  session.save(res.token, username);
  $('signin-form').reset();
  flash('');
  navigate('/');
});

$('signout').addEventListener('click', async () => {
  try {
    await call('POST', '/usr/signout');
  } catch {
    // The token is dropped here either way.
  }
  session.clear();
  flash('You are signed out.');
  navigate('/usr/signin');
});

// ---- home: profile and the folder view ---------------------------------------------

async function loadProfile() {
  try {
    const info = await call('GET', '/usr/info');
    $('profile-count').textContent = String(info.file_count);
    $('profile-bytes').textContent =
      info.quota_bytes === undefined ? bytes(info.bytes_used) : `${bytes(info.bytes_used)} of ${bytes(info.quota_bytes)}`;
    $('profile-trash').textContent = info.trash_count ? `${info.trash_count} (${bytes(info.trash_bytes)})` : 'empty';
    $('profile-since').textContent = date(info.created_at);
  } catch (e) {
    $('files-error').textContent = e.message;
    $('files-error').hidden = false;
  }
}

/** The folder the URL names (`?folder=<id>`), null for the root. */
const folderInUrl = () => new URLSearchParams(location.search).get('folder') || null;

function showHome() {
  loadProfile();
  showFolder(folderInUrl());
}

setupFiles({
  changed: loadProfile,
  folderShown: (folder, name) => {
    // "Upload" takes the open folder along.
    $('nav-upload').setAttribute('href', folder.id ? `/file/upload?${qs({ folder: folder.id })}` : '/file/upload');
    if (viewOf(new URL(location.href)) === '/') document.title = `${name ? displayName(name) : 'Your files'} · pan`;
  },
  upload: (dataTransfer, folder) => dropInto(dataTransfer, folder),
});
setupTrash();
setupShares(confirmAsk);
setupPreview();
setupHistory();
setupPublic();

// The folder view takes files and folders dropped anywhere on it.
const folderView = $('folder-view');
folderView.addEventListener('dragover', (e) => {
  if (![...e.dataTransfer.types].includes('Files')) return;
  e.preventDefault();
  folderView.classList.add('over');
});
folderView.addEventListener('dragleave', (e) => {
  if (!folderView.contains(e.relatedTarget)) folderView.classList.remove('over');
});
folderView.addEventListener('drop', (e) => {
  folderView.classList.remove('over');
  if (![...e.dataTransfer.types].includes('Files')) return;
  e.preventDefault();
  dropInto(e.dataTransfer, currentFolder());
});
for (const id of ['folder-files', 'folder-dir']) {
  $(id).addEventListener('change', (e) => {
    addItems(pickedItems(e.target.files), currentFolder());
    e.target.value = '';
  });
}

/** Refreshes the open folder soon after uploads land in it (once for a burst). */
let refreshTimer = 0;
function refreshSoon() {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(() => {
    if (viewOf(new URL(location.href)) !== '/') return;
    if (busy()) {
      refreshSoon();
      return;
    }
    reload();
    loadProfile();
  }, 400);
}

// ---- upload -----------------------------------------------------------------

const uploads = [];
/** Where the upload view sends files: the folder in its URL. */
let uploadDest = { id: null, path: '/' };

async function showUpload() {
  $('parallel').value = String(parallel());
  showUnfinished();
  const id = folderInUrl();
  uploadDest = { id, path: id ? '…' : '/' };
  const link = $('upload-dest');
  link.textContent = uploadDest.path;
  link.setAttribute('href', folderHref(id));
  if (!id) return;
  try {
    const page = await call('GET', `/folder/list?${qs({ id, limit: 1 })}`);
    if (uploadDest.id === id) uploadDest.path = page.path;
    link.textContent = page.path;
  } catch (e) {
    link.textContent = `(${e.message})`;
  }
}

function showUnfinished() {
  const active = new Set(uploads.filter((u) => !u.finished).map((u) => `${u.file.name}/${u.file.size}`));
  const list = unfinished().filter((u) => !active.has(`${u.name}/${u.size}`));
  $('unfinished').hidden = list.length === 0;
  $('unfinished-list').replaceChildren(
    ...list.map((u) => el('li', {}, el('span', { class: 'name' }, displayName(u.name)), ` (${bytes(u.size)})`)),
  );
}

$('parallel').addEventListener('change', (e) => {
  e.target.value = String(setParallel(e.target.value));
});

for (const id of ['file-input', 'dir-input']) {
  $(id).addEventListener('change', (e) => {
    addItems(pickedItems(e.target.files), uploadDest);
    e.target.value = '';
  });
}

const drop = $('drop');
drop.addEventListener('dragover', (e) => {
  e.preventDefault();
  drop.classList.add('over');
});
drop.addEventListener('dragleave', () => drop.classList.remove('over'));
drop.addEventListener('drop', (e) => {
  e.preventDefault();
  drop.classList.remove('over');
  dropInto(e.dataTransfer, uploadDest);
});
// A file dropped beside the zone must not replace the page.
window.addEventListener('dragover', (e) => e.preventDefault());
window.addEventListener('drop', (e) => e.preventDefault());

async function dropInto(dataTransfer, folder) {
  try {
    addItems(await droppedItems(dataTransfer), folder);
  } catch (e) {
    flash(`Could not read what was dropped: ${e.message || e}`);
  }
}

/**
 * Queues uploads of `[{file, dirs}]` into `folder` ({id, path}): the folders
 * of a tree are made (or reused, see folderMaker) as their first file needs
 * them; an empty folder is made on its own.
 */
function addItems(items, folder) {
  const ensure = folderMaker(folder);
  for (const { file, dirs } of items) {
    if (!file) {
      ensure(dirs).then(refreshSoon, (e) => flash(`Could not make folder “${displayName(dirs.join('/'))}”: ${e.message}`));
      continue;
    }
    const where = `${folder.id || ''}/${JSON.stringify(dirs)}`;
    const same = uploads.find(
      (u) => !u.finished && u.where === where && u.file.name === file.name && u.file.size === file.size
        && u.file.lastModified === file.lastModified,
    );
    if (same) continue;
    const dest = dirs.length ? ensure(dirs) : folder;
    if (dirs.length) dest.then(refreshSoon, () => {});
    // A taken name asks (replace or keep both) for files picked or dropped
    // on their own; a folder tree fills in what is missing, numbering a
    // file whose name is taken by other content, as before.
    const onConflict = dirs.length ? 'rename' : null;
    const up = new Upload(file, { onChange: scheduleDraw, onStored: storedOne, folder: dest, onConflict });
    up.where = where;
    up.view = uploadView(up);
    uploads.unshift(up);
    $('uploads').prepend(up.view.li);
    up.start();
  }
  showUnfinished();
}

function storedOne() {
  showUnfinished();
  refreshSoon();
}

const dirty = new Set();
let frame = 0;
function scheduleDraw(up) {
  dirty.add(up);
  if (!frame) {
    frame = requestAnimationFrame(() => {
      frame = 0;
      for (const u of dirty) draw(u);
      dirty.clear();
    });
  }
}

function uploadView(up) {
  const name = up.file.name;
  const bar = el('progress', { max: 1, value: 0, 'aria-label': `Progress of ${name}` });
  const status = el('p', { class: 'status', 'aria-live': 'polite' });
  const stats = el('p', { class: 'stats' });
  const pause = el('button', { type: 'button', class: 'secondary', 'aria-label': `Pause ${name}`, onclick: () => up.pause() }, 'Pause');
  const resume = el('button', { type: 'button', 'aria-label': `Resume ${name}`, onclick: () => up.resume() }, 'Resume');
  const cancel = el('button', { type: 'button', class: 'danger', 'aria-label': `Cancel ${name}`, onclick: () => up.cancel() }, 'Cancel');
  const remove = el('button', {
    type: 'button',
    class: 'secondary',
    'aria-label': `Remove ${name} from this list`,
    onclick: () => {
      li.remove();
      uploads.splice(uploads.indexOf(up), 1);
    },
  }, 'Remove');
  const replace = el('button', { type: 'button', 'aria-label': `Replace the file ${name}`, onclick: () => up.replace() }, 'Replace');
  const keepBoth = el('button', { type: 'button', class: 'secondary', 'aria-label': `Keep both files named ${name}`, onclick: () => up.keepBoth() }, 'Keep both');
  const where = el('span', { class: 'where' });
  const li = el(
    'li',
    { class: 'upload', 'data-name': name },
    el('div', { class: 'what' }, el('span', { class: 'name' }, name), el('span', { class: 'meta' }, bytes(up.file.size), where)),
    bar,
    status,
    stats,
    el('div', { class: 'actions' }, replace, keepBoth, pause, resume, cancel, remove),
  );
  const view = { li, bar, status, stats, pause, resume, cancel, remove, where, replace, keepBoth };
  up.view = view;
  draw(up);
  return view;
}

const LABELS = {
  preparing: 'Making its folder…',
  hashing: 'Computing the file’s fingerprints (SHA-1, SHA-256)…',
  starting: 'Starting…',
  conflict: 'Name taken',
  uploading: 'Uploading',
  paused: 'Paused',
  completing: 'All chunks sent; finishing…',
  merging: 'Verifying and storing on the server…',
  done: 'Stored',
  instant: 'Finished instantly',
  failed: 'Failed',
  error: 'Stopped',
  cancelled: 'Cancelled',
};

function draw(up) {
  const v = up.view;
  if (!v) return;
  const size = up.file.size;
  v.li.dataset.state = up.state;
  v.li.dataset.uploadId = up.uploadID || '';
  v.li.dataset.folder = up.folderPath || '';
  v.where.textContent = up.folderPath ? ` · into ${displayName(up.folderPath)}` : '';
  let label = LABELS[up.state];
  if (up.message) label = up.state === 'uploading' || up.state === 'instant' ? up.message : `${label}: ${up.message}`;
  if (up.state === 'conflict') {
    label += up.canReplace
      ? ' Replace it (its content is kept in its history) or keep both (this one is numbered)?'
      : ' Keep both (this one is numbered)?';
  }
  v.status.textContent = label;
  v.status.className = `status ${['failed', 'error'].includes(up.state) ? 'error' : ''}`;

  if (up.state === 'hashing') {
    v.bar.value = size ? up.hashed / size : 0;
    v.stats.textContent = `${bytes(up.hashed)} of ${bytes(size)} read`;
  } else if (up.state === 'completing' || up.state === 'merging') {
    v.bar.removeAttribute('value'); // indeterminate
    v.stats.textContent = `${bytes(size)} sent`;
  } else {
    const sent = up.sent;
    v.bar.value = size ? sent / size : up.finished && up.state !== 'failed' ? 1 : 0;
    const parts = [`${bytes(sent)} of ${bytes(size)}`];
    if (up.state === 'uploading') {
      const bps = up.speed;
      parts.push(...(bps > 0 ? [speed(bps), `${duration((size - sent) / bps)} left`] : ['measuring speed…']));
    }
    if (up.resumed && !up.finished) parts.push(`resumed: ${up.resumed} of ${up.chunkcount} chunks were already on the server`);
    v.stats.textContent = parts.join(' · ');
  }
  const s = up.state;
  v.pause.hidden = !['hashing', 'starting', 'uploading'].includes(s);
  const dead = s === 'error' && !up.retryable;
  v.resume.hidden = !(s === 'paused' || (s === 'error' && !dead));
  v.resume.textContent = s === 'error' ? 'Retry' : 'Resume';
  v.replace.hidden = !(s === 'conflict' && up.canReplace);
  v.keepBoth.hidden = s !== 'conflict';
  v.cancel.hidden = !['preparing', 'hashing', 'starting', 'conflict', 'uploading', 'paused', 'error'].includes(s) || (dead && !up.uploadID);
  v.remove.hidden = !(up.finished || dead);
}

// Refresh speeds and times even when no byte moves (a stalled link shows it).
setInterval(() => {
  for (const u of uploads) if (u.state === 'uploading') u.changed();
}, 1000);

// ---- start ---------------------------------------------------------------------

if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', render);
else render();
