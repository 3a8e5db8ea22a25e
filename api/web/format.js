// Small formatting helpers shared by the views.

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

/** 41943040 → "40.0 MiB". */
export function bytes(n) {
  if (!Number.isFinite(n) || n < 0) return '–';
  let i = 0;
  while (n >= 1024 && i < UNITS.length - 1) {
    n /= 1024;
    i += 1;
  }
  return i === 0 ? `${n} B` : `${n.toFixed(n < 10 ? 2 : 1)} ${UNITS[i]}`;
}

/** Bytes per second → "5.2 MiB/s". */
export function speed(bps) {
  return Number.isFinite(bps) && bps > 0 ? `${bytes(Math.round(bps))}/s` : '–';
}

/** Seconds → "1 h 02 min", "3 min 05 s", "12 s". */
export function duration(s) {
  if (!Number.isFinite(s) || s < 0) return '–';
  s = Math.ceil(s);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  if (h) return `${h} h ${String(m).padStart(2, '0')} min`;
  if (m) return `${m} min ${String(sec).padStart(2, '0')} s`;
  return `${sec} s`;
}

/** Unix seconds → the browser's local date and time. */
export function date(unix) {
  return new Date(unix * 1000).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}

/** Creates an element: el('button', {type: 'button', class: 'x'}, 'text', child…). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else if (k === 'class') node.className = v;
    else node.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children) if (c !== null && c !== undefined) node.append(c);
  return node;
}

/**
 * A file name as it is safe to show: bidirectional overrides and isolates
 * (U+202A–U+202E, U+2066–U+2069), which could make `invoice\u202Efdp.exe` read
 * as `invoiceexe.pdf`, are shown as visible `[U+202E]` marks. The server
 * refuses them in new names; older names may still hold them.
 */
export function displayName(name) {
  return String(name).replace(/[\u202A-\u202E\u2066-\u2069]/g, (c) => `[U+${c.charCodeAt(0).toString(16).toUpperCase()}]`);
}
