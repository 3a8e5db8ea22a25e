// Types and previews, for the folder view, search and the public share page.
//
// A file's type comes from its name, as the server decides what it serves
// inline (`preview_type` in api/src/routes/files.rs): images, audio, video,
// PDF and plain text can be shown in place from an inline URL on this origin
// (a signed `/file/signed?…&inline=true`, or a share's
// `/public/share/download?…&inline=true`); anything else gets an icon by type
// and downloads.

import { bytes, displayName, el } from './format.js';

const TYPES = {
  image: ['png', 'jpg', 'jpeg', 'gif', 'webp', 'avif', 'bmp'],
  video: ['mp4', 'm4v', 'webm', 'ogv', 'mov'],
  audio: ['mp3', 'm4a', 'aac', 'ogg', 'oga', 'opus', 'wav', 'flac'],
  pdf: ['pdf'],
  text: ['txt', 'md', 'log', 'csv', 'tsv', 'json', 'yaml', 'yml', 'toml', 'ini', 'conf', 'rs', 'py', 'go', 'c', 'h',
    'cpp', 'java', 'sh', 'sql'],
  archive: ['zip', 'tar', 'gz', 'tgz', 'bz2', 'xz', 'zst', '7z', 'rar'],
};
const BY_EXT = new Map(Object.entries(TYPES).flatMap(([type, exts]) => exts.map((x) => [x, type])));

/** 'image', 'audio', 'video', 'pdf', 'text', 'archive', or 'generic', from a file name. */
export function typeOf(name) {
  const dot = String(name).lastIndexOf('.');
  return (dot > 0 && BY_EXT.get(String(name).slice(dot + 1).toLowerCase())) || 'generic';
}

/** Whether the browser can show this file in place. */
export const previewable = (name) => ['image', 'audio', 'video', 'pdf', 'text'].includes(typeOf(name));

/** The icon of an entry ({kind, name}): a folder, or a file by type. */
export function icon(entry) {
  const cls = entry.kind === 'folder' ? 'icon folder' : `icon file type-${typeOf(entry.name)}`;
  return el('span', { class: cls, 'aria-hidden': 'true' });
}

/** How much of a text file is shown (the rest is a download away). */
const TEXT_BYTES = 256 * 1024;

/**
 * The element that shows a file from its inline URL: `<img>`, `<video>`,
 * `<audio>`, an `<iframe>` for PDF (the browser's viewer), or a `<pre>` with
 * the first 256 KiB of a text file (fetched with a Range).
 */
export function viewer(name, url) {
  const type = typeOf(name);
  const label = displayName(name);
  if (type === 'image') return el('img', { class: 'viewer image', src: url, alt: label });
  if (type === 'video') return el('video', { class: 'viewer video', src: url, controls: true, preload: 'metadata', 'aria-label': label });
  if (type === 'audio') return el('audio', { class: 'viewer audio', src: url, controls: true, preload: 'metadata', 'aria-label': label });
  if (type === 'pdf') return el('iframe', { class: 'viewer pdf', src: url, title: label });
  const pre = el('pre', { class: 'viewer text', tabindex: '0', 'aria-label': label }, 'Loading…');
  showText(pre, url);
  return pre;
}

async function showText(pre, url) {
  try {
    const res = await fetch(url, { headers: { Range: `bytes=0-${TEXT_BYTES - 1}` }, cache: 'no-store' });
    if (!res.ok) throw new Error(`the server answered ${res.status}`);
    const full = res.headers.get('content-range');
    const size = full ? Number(full.split('/')[1]) : NaN;
    pre.textContent = await res.text();
    if (res.status === 206 && size > TEXT_BYTES) {
      pre.after(el('p', { class: 'muted' }, `The first ${bytes(TEXT_BYTES)} of ${bytes(size)}; download the file for the rest.`));
    }
  } catch (e) {
    pre.textContent = `Could not load the text: ${e.message}`;
  }
}

/** Stops whatever a viewer plays or loads. */
function stop(node) {
  for (const m of node.querySelectorAll('video, audio')) {
    m.pause();
    m.removeAttribute('src');
    m.load();
  }
  node.replaceChildren();
}

/** Wires the dialog's Close button. */
export function setupPreview() {
  document.getElementById('preview-close').addEventListener('click', () => document.getElementById('preview').close());
}

/**
 * Opens the preview dialog for a file. `url` is its inline URL, or a promise
 * of one; `download()` saves it; `meta` is shown under the name.
 */
export function openPreview({ name, meta, url, download }) {
  const dialog = document.getElementById('preview');
  const body = document.getElementById('preview-body');
  document.getElementById('preview-title').textContent = displayName(name);
  document.getElementById('preview-meta').textContent = meta || '';
  const error = document.getElementById('preview-error');
  error.hidden = true;
  stop(body);
  body.append(el('p', { class: 'muted' }, 'Loading…'));
  const save = document.getElementById('preview-download');
  save.onclick = download;
  save.setAttribute('aria-label', `Download ${displayName(name)}`);
  dialog.addEventListener('close', () => stop(body), { once: true });
  dialog.showModal();
  document.getElementById('preview-close').focus();
  Promise.resolve(url).then((u) => {
    if (!dialog.open) return;
    body.replaceChildren(viewer(name, u));
  }, (e) => {
    body.replaceChildren();
    error.textContent = e.message;
    error.hidden = false;
  });
}
