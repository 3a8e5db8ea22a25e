// The public page of a share link, `/s/<link>` (`?path=/sub` inside a shared
// folder): no account, no sign-in.
//
// It asks `/public/share/info` what the link shares. A link with a password
// first asks for it (`/public/share/unlock`); the `access` it answers is kept
// in this tab's sessionStorage for the hour it works and passed as a query
// parameter, so `<img>`, `<video>` and plain download links carry it. A file
// shows its name, size and a preview when the browser can show it, with a
// Download button; a folder is browsed by paths inside it (breadcrumbs,
// folders first, "Load more"), each file downloads, and the open folder
// downloads as one zip. A link that is unknown, revoked, expired or used up
// says so.
//
// A download limit counts every GET from byte 0, a preview too (only seeking
// in a video is free); on a link with a limit, previews wait for a click.

import { call, qs } from './api.js';
import { bytes, date, displayName, el } from './format.js';
import { icon, openPreview, previewable, typeOf, viewer } from './preview.js';

const $ = (id) => document.getElementById(id);
const PAGE_SIZE = 100;

const state = { link: '', access: null, info: null, path: '/', cursor: null, loads: 0 };

const accessKey = (link) => `pan.share.${link}`;

/** The link in a `/s/<link>` path. */
export function linkOf(pathname) {
  return decodeURIComponent(pathname.slice('/s/'.length).split('/')[0] || '');
}

function params(extra = {}) {
  const p = { link: state.link, ...extra };
  if (state.access) p.access = state.access;
  return qs(p);
}

const downloadUrl = (path, inline = false) => `/public/share/download?${params({ ...(path ? { path } : {}), ...(inline ? { inline: true } : {}) })}`;
const zipUrl = (path) => `/public/share/zip?${params(path && path !== '/' ? { path } : {})}`;

function panel(...children) {
  $('public-body').replaceChildren(...children);
}

function setError(message) {
  $('public-error').textContent = message || '';
  $('public-error').hidden = !message;
}

const GONE = {
  SHARE_NOT_FOUND: ['Link not found', 'This share link was not found: it may have been revoked, or what it shared was deleted. Ask whoever sent it for a new one.'],
  SHARE_EXPIRED: ['This link has expired', 'It no longer opens what it shared. Ask whoever sent it for a new one.'],
  SHARE_EXHAUSTED: ['This link is used up', 'It has no downloads left. Ask whoever sent it for a new one.'],
};

/** A link that cannot open: says why, nothing else. */
function gone(err) {
  const [title, text] = GONE[err.code] || ['This link cannot be opened', err.message];
  $('public-title').textContent = title;
  document.title = `${title} · pan`;
  $('public-meta').textContent = '';
  $('public-actions').replaceChildren();
  $('public-crumbs').replaceChildren();
  panel(el('p', { class: 'gone', 'data-code': err.code }, text));
}

/** Shows the page of the link in `location` (called on every navigation inside it). */
export async function showPublic() {
  const load = ++state.loads;
  const link = linkOf(location.pathname);
  if (link !== state.link) {
    state.link = link;
    state.info = null;
    state.access = sessionStorage.getItem(accessKey(link));
  }
  state.path = new URLSearchParams(location.search).get('path') || '/';
  setError('');
  if (!state.info) {
    $('public-title').textContent = 'Opening the link…';
    try {
      state.info = await call('GET', `/public/share/info?${params()}`);
    } catch (e) {
      if (load !== state.loads) return;
      if (e.code === 'SHARE_PASSWORD_REQUIRED') {
        if (state.access) sessionStorage.removeItem(accessKey(link));
        state.access = null;
        askPassword();
      } else if (e.status === 404 || e.status === 410) {
        gone(e);
      } else {
        $('public-title').textContent = 'This link cannot be opened now';
        panel();
        setError(e.message);
      }
      return;
    }
    if (load !== state.loads) return;
  }
  $('public-password').hidden = true;
  const info = state.info;
  // A used-up link is answered 410 by the server; 0 downloads left means
  // less than one whole size is left (a smaller file or the rest of one may fit).
  $('public-title').textContent = displayName(info.name);
  document.title = `${displayName(info.name)} · pan`;
  const meta = [];
  if (info.kind === 'file') meta.push(bytes(info.size));
  meta.push(info.expires_at ? `Link works until ${date(info.expires_at)}` : 'Link does not expire');
  if (info.downloads_left === 0) meta.push('less than one download left');
  else if (info.downloads_left !== undefined) meta.push(`${info.downloads_left} download${info.downloads_left === 1 ? '' : 's'} left`);
  $('public-meta').textContent = meta.join(' · ');
  if (info.kind === 'file') showFile(info);
  else await showFolder(load);
}

function askPassword() {
  $('public-title').textContent = 'This link has a password';
  document.title = 'Password needed · pan';
  $('public-meta').textContent = '';
  $('public-actions').replaceChildren();
  $('public-crumbs').replaceChildren();
  panel();
  $('public-password').hidden = false;
  $('public-password-input').value = '';
  $('public-password-input').focus();
}

async function unlock(ev) {
  ev.preventDefault();
  setError('');
  const password = $('public-password-input').value;
  if (!password) {
    setError('Type the password you were given with the link.');
    return;
  }
  const button = $('public-unlock');
  button.disabled = true;
  try {
    const res = await call('POST', `/public/share/unlock?${qs({ link: state.link })}`, { json: { password } });
    state.access = res.access;
    sessionStorage.setItem(accessKey(state.link), res.access);
    $('public-password').hidden = true;
    await showPublic();
  } catch (e) {
    if (e.status === 404 || e.status === 410) {
      $('public-password').hidden = true;
      gone(e);
    } else {
      // 403: wrong password; 429: too many tries (the message says when to retry).
      setError(e.message);
      $('public-password-input').select();
    }
  } finally {
    button.disabled = false;
  }
}

function showFile(info) {
  $('public-crumbs').replaceChildren();
  $('public-actions').replaceChildren(
    el('a', { class: 'button', href: downloadUrl(null), download: info.name, id: 'public-download' }, 'Download'),
  );
  if (!previewable(info.name)) {
    panel(el('div', { class: 'public-file' }, icon({ kind: 'file', name: info.name }), el('p', { class: 'muted' }, 'This file cannot be shown here; download it to open it.')));
    return;
  }
  const show = () => panel(el('div', { class: `public-preview type-${typeOf(info.name)}` }, viewer(info.name, downloadUrl(null, true))));
  if (info.downloads_left === undefined) show();
  else panel(el('button', { type: 'button', class: 'secondary', id: 'public-show', onclick: show }, 'Show a preview (counts as a download)'));
}

/** Breadcrumbs inside the share: its name, then each folder of the path. */
function drawCrumbs() {
  const names = state.path.split('/').filter(Boolean);
  if (!names.length) {
    // At the top the title names the folder; crumbs only help further down.
    $('public-crumbs').replaceChildren();
    return;
  }
  const crumbs = [{ name: state.info.name, path: '/' }];
  let path = '';
  for (const n of names) {
    path += `/${n}`;
    crumbs.push({ name: n, path });
  }
  $('public-crumbs').replaceChildren(...crumbs.map((c, i) => el('li', {}, el('a', {
    href: `${location.pathname}${c.path === '/' ? '' : `?${qs({ path: c.path })}`}`,
    'data-nav': true,
    'aria-current': i === crumbs.length - 1 ? 'page' : undefined,
  }, displayName(c.name)))));
}

async function showFolder(load) {
  drawCrumbs();
  const inSub = state.path !== '/';
  $('public-actions').replaceChildren(el('a', {
    class: 'button',
    id: 'public-zip',
    href: zipUrl(state.path),
    download: `${inSub ? state.path.split('/').pop() : state.info.name}.zip`,
  }, inSub ? `Download “${displayName(state.path.split('/').pop())}” as zip` : 'Download all as zip'));
  const list = el('ul', { class: 'files public-list', id: 'public-list', 'aria-label': 'Folders and files' });
  const more = el('button', { type: 'button', class: 'secondary', id: 'public-more', hidden: true }, 'Load more');
  const empty = el('p', { id: 'public-empty', hidden: true }, 'This folder is empty.');
  panel(empty, list, el('div', { class: 'more' }, more));
  state.cursor = null;
  const page = async () => {
    const p = { path: state.path, limit: PAGE_SIZE, sort: 'name', order: 'asc' };
    if (state.cursor) p.cursor = state.cursor;
    const res = await call('GET', `/public/share/list?${params(p)}`);
    if (load !== state.loads) return;
    state.cursor = res.next_cursor || null;
    list.append(...res.entries.map(entryRow));
    empty.hidden = list.children.length !== 0;
    more.hidden = !state.cursor;
  };
  more.addEventListener('click', async () => {
    more.disabled = true;
    try {
      await page();
    } catch (e) {
      setError(e.message);
    } finally {
      more.disabled = false;
    }
  });
  try {
    await page();
  } catch (e) {
    if (load !== state.loads) return;
    if (e.code === 'SHARE_PASSWORD_REQUIRED') {
      // The hour of access ran out.
      sessionStorage.removeItem(accessKey(state.link));
      state.access = null;
      state.info = null;
      askPassword();
    } else if (e.code in GONE) gone(e);
    else setError(e.message);
  }
}

function entryRow(e) {
  const path = state.path === '/' ? `/${e.name}` : `${state.path}/${e.name}`;
  const label = displayName(e.name);
  const row = el('li', { class: `entry ${e.kind}`, 'data-name': e.name, 'data-kind': e.kind });
  // A file's own modification time; a folder's last change.
  const t = e.kind === 'file' && Number.isFinite(e.mtime) ? e.mtime : e.updated_at;
  const when = el('time', { class: 'modified', datetime: new Date(t * 1000).toISOString() }, date(t));
  if (e.kind === 'folder') {
    row.append(icon(e), el('div', { class: 'what' },
      el('a', { class: 'name', href: `${location.pathname}?${qs({ path })}`, 'data-nav': true }, label),
      el('span', { class: 'meta' }, 'Folder · ', when)));
    return row;
  }
  const name = previewable(e.name)
    ? el('button', { type: 'button', class: 'name link', 'aria-label': `Preview ${label}`, onclick: () => preview(e, path) }, label)
    : el('span', { class: 'name' }, label);
  row.append(icon(e), el('div', { class: 'what' }, name, el('span', { class: 'meta' }, bytes(e.size), ' · ', when)),
    el('div', { class: 'actions' }, el('a', { class: 'button secondary', href: downloadUrl(path), download: e.name, 'aria-label': `Download ${label}` }, 'Download')));
  return row;
}

function preview(e, path) {
  const limited = state.info.downloads_left !== undefined;
  openPreview({
    name: e.name,
    meta: `${bytes(e.size)}${limited ? ' · a preview counts as a download' : ''}`,
    url: downloadUrl(path, true),
    download: () => {
      const a = el('a', { href: downloadUrl(path), download: e.name, hidden: true });
      document.body.append(a);
      a.click();
      a.remove();
    },
  });
}

export function setupPublic() {
  $('public-password').addEventListener('submit', unlock);
}
