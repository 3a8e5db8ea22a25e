// Share links, as their owner makes and manages them: the share dialog (from
// a row of the folder view, a search result or a selection of one) and the
// "Shared links" view (`/?view=shares`).
//
// A link has an optional password (8+ characters, kept hashed by the
// server), an expiry (never, 1, 7 or 30 days, or a custom date) and an
// optional download limit; the dialog then shows its URL with a copy button.
// The view lists the links with what they share, their options and download
// counts, and revokes them (after a confirmation).

import { call, qs } from './api.js';
import { date, displayName, el } from './format.js';
import { icon } from './preview.js';

const $ = (id) => document.getElementById(id);

const DAY = 86_400;

/** Seconds until the chosen expiry; 0: never; throws a message for a bad custom date. */
function expiresIn() {
  const choice = $('share-expiry').value;
  if (choice === 'never') return 0;
  if (choice !== 'custom') return Number(choice) * DAY;
  const value = $('share-expiry-date').value;
  if (!value) throw new Error('Pick the date the link stops working.');
  // A date means the end of that day, in the browser's time zone.
  const end = new Date(`${value}T23:59:59`);
  const s = Math.round((end.getTime() - Date.now()) / 1000);
  if (!(s > 0)) throw new Error('The expiry date must be in the future.');
  return s;
}

/** "Password · expires 3 May 2027, 14:00 · 2 of 10 downloads": a link's options in words. */
export function describeShare(s) {
  const parts = [s.has_password ? 'Password' : 'No password'];
  parts.push(s.expires_at ? `${s.expires_at * 1000 < Date.now() ? 'expired' : 'expires'} ${date(s.expires_at)}` : 'never expires');
  parts.push(s.max_downloads ? `${s.downloads} of ${s.max_downloads} downloads` : `${s.downloads} download${s.downloads === 1 ? '' : 's'}`);
  return parts.join(' · ');
}

/** Copies `text`; says so in `status` (an element). Without clipboard access, selects `input` (if any) for Ctrl+C. */
export async function copy(text, input, status) {
  try {
    await navigator.clipboard.writeText(text);
    status.textContent = 'Copied.';
  } catch {
    // No clipboard access (an insecure origin, a denied permission).
    if (input) {
      input.focus();
      input.select();
    }
    status.textContent = input ? 'Press Ctrl+C (⌘C) to copy.' : 'Could not copy: select the link and copy it.';
  }
}

function setError(message) {
  $('share-error').textContent = message || '';
  $('share-error').hidden = !message;
}

/** Opens the share dialog for one entry ({kind, id, name}); `made(share)` after a link is made. */
export function openShare(entry, made = () => {}) {
  const dialog = $('share');
  const form = $('share-form');
  form.reset();
  $('share-title').textContent = `Share “${displayName(entry.name)}”`;
  $('share-what').textContent = entry.kind === 'folder'
    ? 'Anyone with the link can browse this folder and download what is in it, without an account.'
    : 'Anyone with the link can see and download this file, without an account.';
  $('share-expiry').value = String(30);
  $('share-custom').hidden = true;
  $('share-expiry-date').min = new Date(Date.now() + DAY * 1000).toISOString().slice(0, 10);
  form.hidden = false;
  $('share-result').hidden = true;
  $('share-copied').textContent = '';
  setError('');
  form.onsubmit = async (ev) => {
    ev.preventDefault();
    setError('');
    const body = { id: entry.id };
    try {
      const password = $('share-password').value;
      if (password) {
        if (password.length < 8) throw new Error('A password needs at least 8 characters (or leave it empty).');
        body.password = password;
      }
      body.expires_in = expiresIn();
      const limit = $('share-limit').value.trim();
      if (limit) {
        const n = Number(limit);
        if (!Number.isInteger(n) || n < 1) throw new Error('The download limit is a whole number, 1 or more (or leave it empty).');
        body.max_downloads = n;
      }
    } catch (e) {
      setError(e.message);
      return;
    }
    const button = $('share-create');
    button.disabled = true;
    try {
      const share = await call('POST', '/share/create', { json: body });
      form.hidden = true;
      $('share-url').value = share.url;
      $('share-open').href = share.url;
      $('share-summary').textContent = describeShare(share);
      $('share-result').hidden = false;
      $('share-url').focus();
      $('share-url').select();
      made(share);
    } catch (e) {
      setError(e.message);
    } finally {
      button.disabled = false;
    }
  };
  dialog.showModal();
  $('share-password').focus();
}

// ---- the "Shared links" view ---------------------------------------------------------

let confirmAsk = async () => false;
let loads = 0;

function viewError(message) {
  $('shares-error').textContent = message || '';
  $('shares-error').hidden = !message;
}

function viewNote(message) {
  $('shares-note').textContent = message || '';
  $('shares-note').hidden = !message;
}

/** Shows the user's links, newest first. */
export async function showShares() {
  const load = ++loads;
  viewError('');
  let list;
  try {
    list = await call('GET', '/share/list');
  } catch (e) {
    if (load === loads) viewError(e.message);
    return;
  }
  if (load !== loads) return;
  $('shares').replaceChildren(...list.shares.map(shareRow));
  $('shares-none').hidden = list.shares.length !== 0;
}

function shareRow(s) {
  const what = s.path ? displayName(s.path) : '(in the trash or deleted: the link works again if it is restored)';
  const name = s.path ? s.path.split('/').pop() : s.target;
  const status = el('p', { class: 'error row-error', role: 'alert', hidden: true });
  const copied = el('span', { class: 'muted copied', role: 'status' });
  const url = el('a', { class: 'share-url', href: s.url, target: '_blank', rel: 'noopener noreferrer' }, s.url);
  const row = el('li', { class: `entry share ${s.kind}`, 'data-link': s.link, 'data-path': s.path || '' },
    icon({ kind: s.kind, name }),
    el('div', { class: 'what' },
      el('span', { class: 'name' }, what),
      url,
      el('span', { class: 'meta share-options' }, describeShare(s)),
      el('span', { class: 'meta' }, `Made ${date(s.created_at)}`)),
    el('div', { class: 'actions' },
      el('button', { type: 'button', class: 'secondary', 'aria-label': `Copy the link to ${what}`, onclick: () => copy(s.url, null, copied) }, 'Copy link'),
      el('button', { type: 'button', class: 'danger', 'aria-label': `Revoke the link to ${what}`, onclick: () => revoke(s, what, status) }, 'Revoke'),
      copied),
    status);
  return row;
}

async function revoke(s, what, status) {
  viewNote('');
  status.hidden = true;
  const ok = await confirmAsk({
    title: 'Revoke this link?',
    text: `The link to ${what} will stop working at once, for everyone who has it. This cannot be undone (you can make a new link).`,
    ok: 'Revoke',
  });
  if (!ok) return;
  try {
    await call('DELETE', `/share/revoke?${qs({ link: s.link })}`);
    await showShares();
    viewNote(`The link to ${what} is revoked.`);
  } catch (e) {
    status.textContent = e.message;
    status.hidden = false;
  }
}

/** Wires the dialog; `ask` is the page's confirmation dialog. */
export function setupShares(ask) {
  confirmAsk = ask;
  $('share-expiry').addEventListener('change', () => {
    const custom = $('share-expiry').value === 'custom';
    $('share-custom').hidden = !custom;
    if (custom) $('share-expiry-date').focus();
  });
  const close = () => $('share').close();
  $('share-cancel').addEventListener('click', close);
  $('share-done').addEventListener('click', close);
  $('share-all').addEventListener('click', close);
  $('share-copy').addEventListener('click', () => copy($('share-url').value, $('share-url'), $('share-copied')));
}
