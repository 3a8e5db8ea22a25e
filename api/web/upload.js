// Chunked, resumable uploads: init with the file's name, size and a local
// fingerprint, then at the same time the missing chunks (several at a time,
// with retries) and SHA-1 + SHA-256 in a Web Worker, declared when ready (with
// the answer to a proof-of-possession challenge; an `instant` answer stops
// the sending), complete, then status until done or failed. A name taken in
// the folder stops a picked or dropped file at init until the user chooses
// to replace that file (its content becomes a version) or keep both. Each upload
// goes into a folder; a dropped or picked folder tree is walked here and its
// folders made (or found) before its files go into the same queue.

import { ApiError, call, errorFromText, networkError, qs, session } from './api.js';

// ---- hashing in a worker ----------------------------------------------------

let worker = null;
const hashJobs = new Map();
let nextJobId = 1;

function hashWorker() {
  if (worker) return worker;
  worker = new Worker('/static/hash-worker.js');
  worker.onmessage = (event) => {
    const msg = event.data;
    const job = hashJobs.get(msg.id);
    if (!job) return;
    if (msg.type === 'progress') {
      job.onProgress(msg.done);
      return;
    }
    hashJobs.delete(msg.id);
    if (msg.type === 'done') job.resolve(msg.result);
    else if (msg.type === 'cancelled') job.reject(new DOMException('hashing cancelled', 'AbortError'));
    else job.reject(new ApiError(0, 'HASH_FAILED', msg.message));
  };
  worker.onerror = (event) => {
    event.preventDefault();
    const err = new ApiError(0, 'HASH_FAILED', 'The browser could not compute the file\'s SHA-1.');
    for (const job of hashJobs.values()) job.reject(err);
    hashJobs.clear();
    worker.terminate();
    worker = null;
  };
  return worker;
}

/** `{sha1, sha256}` (hex) of a file; `cancel()` stops it (the promise rejects with AbortError). */
function hashFile(file, onProgress) {
  return workerJob({ type: 'hash', file }, onProgress);
}

/** The answer (hex) to an init's challenge, from the file's bytes. */
function proveFile(file, challenge) {
  return workerJob({ type: 'prove', file, challenge }, () => {});
}

function workerJob(message, onProgress) {
  const id = nextJobId++;
  const promise = new Promise((resolve, reject) => {
    hashJobs.set(id, { resolve, reject, onProgress });
    hashWorker().postMessage({ ...message, id });
  });
  const cancel = () => worker && hashJobs.has(id) && worker.postMessage({ type: 'cancel', id });
  return { promise, cancel };
}

// ---- chunks in flight, shared by every upload -----------------------------

const PARALLEL_KEY = 'pan.parallel';
const slots = { limit: clampParallel(localStorage.getItem(PARALLEL_KEY) ?? 4), busy: 0, waiting: [] };

function clampParallel(n) {
  n = Math.round(Number(n));
  return Number.isFinite(n) ? Math.min(16, Math.max(1, n)) : 4;
}

export function parallel() {
  return slots.limit;
}

/** How many chunks go out at once, over all uploads (1–16, default 4). */
export function setParallel(n) {
  slots.limit = clampParallel(n);
  localStorage.setItem(PARALLEL_KEY, String(slots.limit));
  wakeWaiters();
  return slots.limit;
}

function acquireSlot() {
  if (slots.busy < slots.limit) {
    slots.busy += 1;
    return Promise.resolve();
  }
  return new Promise((resolve) => slots.waiting.push(resolve));
}

function releaseSlot() {
  slots.busy -= 1;
  wakeWaiters();
}

function wakeWaiters() {
  while (slots.busy < slots.limit && slots.waiting.length) {
    slots.busy += 1;
    slots.waiting.shift()();
  }
}

// ---- unfinished uploads, remembered across reloads --------------------------

const UNFINISHED_TTL = 24 * 3600 * 1000;

function unfinishedKey() {
  return `pan.unfinished.${session.username || ''}`;
}

/** Uploads begun and not finished (by this browser), newest first. */
export function unfinished() {
  let list = [];
  try {
    list = JSON.parse(localStorage.getItem(unfinishedKey()) || '[]');
  } catch {
    list = [];
  }
  const now = Date.now();
  return list.filter((u) => now - u.at < UNFINISHED_TTL).sort((a, b) => b.at - a.at);
}

function remember(up) {
  const list = unfinished().filter((u) => u.fingerprint !== up.fingerprint);
  list.unshift({ name: up.file.name, size: up.file.size, fingerprint: up.fingerprint, at: Date.now() });
  localStorage.setItem(unfinishedKey(), JSON.stringify(list.slice(0, 50)));
}

function forget(up) {
  const list = unfinished().filter((u) => u.fingerprint !== up.fingerprint);
  localStorage.setItem(unfinishedKey(), JSON.stringify(list));
}

/**
 * This browser's token for a file going to a folder: its name, size,
 * modification time and destination, hashed (FNV-1a, two lanes) so it is
 * short and says nothing readable. Picking the same file again finds the
 * unfinished upload (init answers `resume`) before the file is hashed; a
 * file changed in place gets a new mtime, so a new upload.
 */
/** The picked file's modification time in Unix seconds, when the server can take it. */
function mtimeOf(file) {
  const s = Math.floor(file.lastModified / 1000);
  return Number.isFinite(s) && s >= 0 && s <= 253402300799 ? s : undefined;
}

function fingerprintOf(file, folder) {
  const text = `${file.name}\n${file.size}\n${file.lastModified}\n${folder || ''}`;
  let a = 0x811c9dc5;
  let b = 0x01000193 ^ text.length;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193) >>> 0;
    b = Math.imul(b ^ c, 0x5bd1e995) >>> 0;
  }
  const hex = (n) => n.toString(16).padStart(8, '0');
  return `web1-${file.size}-${file.lastModified}-${hex(a)}${hex(b)}`;
}

// ---- one upload -------------------------------------------------------------

const MAX_RETRIES = 8;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const aborted = () => new DOMException('stopped', 'AbortError');
const isAbort = (e) => e && e.name === 'AbortError';

/** Delay before retry `attempt` (0-based): 0.5 s, 1 s, 2 s … up to 15 s, with jitter. */
function backoff(attempt) {
  const base = Math.min(15000, 500 * 2 ** attempt);
  return base / 2 + Math.random() * (base / 2);
}

/** The wait before retrying after `e`: the backoff, or longer when the server says so (Retry-After). */
function retryDelay(e, attempt) {
  return Math.max(backoff(attempt), e instanceof ApiError ? e.retryAfterMs : 0);
}

/**
 * One file's upload. `state` is one of: preparing (its folder is being
 * made), hashing, starting, conflict (the name is taken: waiting for a
 * choice), uploading, paused, completing, merging, done, instant, failed,
 * error, cancelled. `onChange` is called after every
 * change; `onStored` once the file is stored. `folder` is where it goes,
 * `{id, path}` (id null: the root), or a promise of it (a folder of a dropped
 * tree, still being made).
 *
 * `onConflict` is what to do when the name is taken in the folder: null
 * asks (init refuses, and the upload waits in state `conflict` until
 * `replace()` or `keepBoth()`), or `rename` / `replace` as the API takes it.
 */
export class Upload {
  constructor(file, { onChange, onStored, folder = { id: null, path: '/' }, onConflict = null }) {
    this.file = file;
    this.destination = folder;
    this.folder = null; // the folder's id once known (null: the root)
    this.folderPath = folder instanceof Promise ? null : folder.path;
    this.onChange = onChange;
    this.onStored = onStored;
    this.state = 'hashing';
    this.message = '';
    this.hash = null;
    this.sha256 = null;
    this.hashed = 0;
    this.fingerprint = null;
    this.uploadID = null;
    this.chunkcount = 0;
    this.chunksize = 0;
    this.done = new Set(); // chunks the server holds
    this.resumed = 0; // chunks the server held at the last init
    this.inflight = new Map(); // chunk index → {xhr, loaded}
    this.samples = []; // [time ms, bytes sent] for the speed
    this.generation = 0; // bumped by pause and cancel: older runs stop
    this.hashJob = null;
    this.stored = null;
    this.retryable = true; // whether Retry makes sense after an error
    this.onConflict = onConflict;
    this.canReplace = true; // false once the taken name turned out to be a folder's
  }

  get finished() {
    return ['done', 'instant', 'failed', 'cancelled'].includes(this.state);
  }

  /** Bytes the server holds or is receiving now. */
  get sent() {
    if (this.state === 'done' || this.state === 'instant') return this.file.size;
    let n = 0;
    for (const i of this.done) n += this.chunkBytes(i);
    for (const c of this.inflight.values()) n += c.loaded;
    return Math.min(n, this.file.size);
  }

  /** Bytes per second over the last few seconds. */
  get speed() {
    const s = this.samples;
    if (s.length < 2) return 0;
    const [t0, b0] = s[0];
    const [t1, b1] = s[s.length - 1];
    return t1 > t0 ? Math.max(0, ((b1 - b0) * 1000) / (t1 - t0)) : 0;
  }

  chunkBytes(i) {
    const start = i * this.chunksize;
    return Math.max(0, Math.min(this.chunksize, this.file.size - start));
  }

  changed() {
    if (this.state === 'uploading') {
      const now = Date.now();
      this.samples.push([now, this.sent]);
      while (this.samples.length > 2 && now - this.samples[0][0] > 5000) this.samples.shift();
    }
    this.onChange(this);
  }

  set(state, message = '') {
    this.state = state;
    this.message = message;
    this.changed();
  }

  /**
   * Starts (or, after pause or error, restarts from init: the server says
   * which chunks it holds). The chunks go out at once while a worker hashes
   * the file; the hashes are declared when ready (which may end the upload
   * as `instant`), and complete follows once both are done.
   */
  async start() {
    const gen = ++this.generation;
    const stale = () => gen !== this.generation;
    this.samples = [];
    try {
      if (this.folderPath === null) this.set('preparing');
      const dest = await this.destination;
      if (stale()) return;
      this.folder = dest.id || null;
      this.folderPath = dest.path;
      this.fingerprint = fingerprintOf(this.file, this.folder);
      this.set('starting');
      // A server at its limit of open uploads (429) says when to come back.
      const init = await this.withRetries(
        () => call('POST', '/file/mupload/init', {
          json: {
            filename: this.file.name,
            filesize: this.file.size,
            fingerprint: this.fingerprint,
            folder: this.folder || undefined,
            mtime: mtimeOf(this.file),
            on_conflict: this.onConflict || 'refuse',
          },
        }),
        gen,
      );
      if (stale()) return;
      this.uploadID = init.uploadID;
      this.chunkcount = init.chunkcount;
      this.chunksize = init.chunksize;
      this.done = new Set(init.uploaded);
      this.resumed = init.status === 'resume' ? init.uploaded.length : 0;
      remember(this);
      this.set('uploading');
      // Either may stop the other: a failed send ends the upload here, an
      // `instant` declaration ends it as stored (and bumps the generation).
      await Promise.all([this.sendMissing(gen), this.hashAndDeclare(gen)]);
      if (stale()) return;
      await this.complete(gen);
      if (stale()) return;
      await this.waitForMerge(gen);
    } catch (e) {
      if (stale() || isAbort(e)) return;
      this.abortInflight();
      if (e instanceof ApiError && e.code === 'NAME_TAKEN' && this.onConflict !== 'rename') {
        // Refused at init, nothing sent: the user chooses. A folder of that
        // name is never replaced (refused again with `replace`).
        if (this.onConflict === 'replace') this.canReplace = false;
        this.onConflict = null;
        this.set('conflict', this.canReplace
          ? `“${this.file.name}” is already in ${this.folderPath}.`
          : e.message);
        return;
      }
      // Retrying helps after network trouble, a busy server or a state
      // conflict; not when the request itself is refused (too large, say).
      this.retryable = !(e instanceof ApiError) || e.transient || [401, 404, 409].includes(e.status);
      if (e instanceof ApiError && e.code === 'HASH_ALREADY_DECLARED') this.retryable = false;
      this.set('error', e.message || String(e));
    }
  }

  /**
   * Hashes the file in the worker (once: a retry reuses the digests) and
   * declares the hashes. When the server has the content already (the
   * caller's, or someone else's and the page proves it holds the bytes) the
   * upload is over: the chunks still going out are stopped.
   */
  async hashAndDeclare(gen) {
    if (!this.hash) {
      this.hashJob = hashFile(this.file, (n) => {
        this.hashed = n;
      });
      const digests = await this.hashJob.promise;
      this.hashJob = null;
      this.hash = digests.sha1;
      this.sha256 = digests.sha256;
    }
    if (gen !== this.generation) throw aborted();
    const declareURL = `/file/mupload/declare?${qs({ uploadID: this.uploadID })}`;
    let answer = await this.withRetries(
      () => call('POST', declareURL, { json: { filehash: this.hash, sha256: this.sha256 } }),
      gen,
    );
    if (gen !== this.generation) throw aborted();
    if (answer.status === 'new' && answer.challenge) {
      // Stored by someone else: proving we hold the bytes skips sending the rest.
      const proof = await proveFile(this.file, answer.challenge).promise;
      if (gen !== this.generation) throw aborted();
      answer = await call('POST', `/file/mupload/prove?${qs({ uploadID: this.uploadID })}`, { json: { proof } });
      if (gen !== this.generation) throw aborted();
    }
    if (answer.status === 'instant') {
      this.generation += 1;
      this.abortInflight();
      this.stored = answer.file || null;
      forget(this);
      this.set('instant', 'This content was already stored, so it finished at once.');
      this.onStored(this);
      throw aborted();
    }
  }

  /** Sends every chunk the server lacks, `parallel()` at a time over all uploads. */
  async sendMissing(gen) {
    const queue = [];
    for (let i = 0; i < this.chunkcount; i++) if (!this.done.has(i)) queue.push(i);
    let failure = null;
    const lane = async () => {
      while (queue.length && !failure && gen === this.generation) {
        await acquireSlot();
        try {
          if (failure || gen !== this.generation || !queue.length) return;
          const i = queue.shift();
          await this.sendChunk(i, gen);
        } catch (e) {
          failure = failure || e;
          // Stop the other lanes' requests too: the upload stops here.
          this.abortInflight();
        } finally {
          releaseSlot();
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(16, queue.length) }, lane));
    if (gen !== this.generation) throw aborted();
    if (failure) throw failure;
  }

  /** One chunk, retried with backoff on network errors and 5xx. */
  async sendChunk(i, gen) {
    for (let attempt = 0; ; attempt++) {
      try {
        await this.putChunk(i);
        this.done.add(i);
        if (this.message) this.message = '';
        this.changed();
        return;
      } catch (e) {
        if (gen !== this.generation || isAbort(e)) throw aborted();
        if (!(e instanceof ApiError) || !e.transient || attempt >= MAX_RETRIES) throw e;
        this.message = `${e.message} Retrying chunk ${i + 1} (attempt ${attempt + 2})…`;
        this.changed();
        await sleep(retryDelay(e, attempt));
        if (gen !== this.generation) throw aborted();
      }
    }
  }

  /** POST one chunk's bytes (read from disk by the browser, not held in memory). */
  putChunk(i) {
    return new Promise((resolve, reject) => {
      const start = i * this.chunksize;
      const body = this.file.slice(start, start + this.chunkBytes(i));
      const xhr = new XMLHttpRequest();
      const entry = { xhr, loaded: 0 };
      this.inflight.set(i, entry);
      const settle = (fn) => {
        this.inflight.delete(i);
        fn();
      };
      xhr.open('POST', `/file/mupload/uppart?${qs({ uploadID: this.uploadID, chkidx: i })}`);
      xhr.setRequestHeader('Authorization', `Bearer ${session.token}`);
      xhr.setRequestHeader('Content-Type', 'application/octet-stream');
      xhr.setRequestHeader('Accept', 'application/json');
      xhr.upload.onprogress = (e) => {
        entry.loaded = e.loaded;
        this.changed();
      };
      xhr.onload = () => {
        if (xhr.status >= 200 && xhr.status < 300) settle(resolve);
        else errorFromText(xhr.status, xhr.responseText).then((err) => settle(() => reject(err)));
      };
      xhr.onerror = () => settle(() => reject(networkError()));
      xhr.ontimeout = xhr.onerror;
      xhr.onabort = () => settle(() => reject(aborted()));
      xhr.send(body);
    });
  }

  abortInflight() {
    for (const { xhr } of this.inflight.values()) xhr.abort();
    this.inflight.clear();
  }

  /** complete; chunks the server reports missing are sent again (a few rounds at most). */
  async complete(gen) {
    this.set('completing');
    for (let round = 0; ; round++) {
      try {
        await this.withRetries(() => call('POST', `/file/mupload/complete?${qs({ uploadID: this.uploadID })}`), gen);
        return;
      } catch (e) {
        if (!(e instanceof ApiError) || e.code !== 'CHUNKS_MISSING' || round >= 3) throw e;
        for (const i of e.body.missing || []) this.done.delete(i);
        this.set('uploading');
        await this.sendMissing(gen);
        this.set('completing');
      }
    }
  }

  /** Polls status until the merge is done or failed. */
  async waitForMerge(gen) {
    this.set('merging');
    for (let delay = 100; ; delay = Math.min(3000, delay * 1.5)) {
      const st = await this.withRetries(
        () => call('GET', `/file/mupload/status?${qs({ uploadID: this.uploadID })}`),
        gen,
      );
      if (gen !== this.generation) return;
      if (st.state === 'done') {
        this.stored = st.file || null;
        forget(this);
        this.set('done');
        this.onStored(this);
        return;
      }
      if (st.state === 'failed') {
        forget(this);
        this.set('failed', st.reason || 'the server could not store the file');
        return;
      }
      await sleep(delay);
      if (gen !== this.generation) return;
    }
  }

  /** `fn()`, retried on network errors, 5xx and 429 (waiting as long as Retry-After asks). */
  async withRetries(fn, gen) {
    for (let attempt = 0; ; attempt++) {
      try {
        return await fn();
      } catch (e) {
        if (!(e instanceof ApiError) || !e.transient || attempt >= MAX_RETRIES) throw e;
        await sleep(retryDelay(e, attempt));
        if (gen !== this.generation) throw aborted();
      }
    }
  }

  /** Stops sending; chunks in flight are dropped (resume sends them again). */
  pause() {
    if (!['hashing', 'starting', 'uploading'].includes(this.state)) return;
    this.generation += 1;
    if (this.hashJob) {
      this.hashJob.cancel();
      this.hashJob = null;
    }
    this.abortInflight();
    this.set('paused');
  }

  resume() {
    if (this.state === 'paused' || this.state === 'error') this.start();
  }

  /** After a taken name: gives the file of that name this content (its own is kept as a version). */
  replace() {
    if (this.state !== 'conflict' || !this.canReplace) return;
    this.onConflict = 'replace';
    this.start();
  }

  /** After a taken name: stores this one beside it, numbered (`name (1).ext`). */
  keepBoth() {
    if (this.state !== 'conflict') return;
    this.onConflict = 'rename';
    this.start();
  }

  /** Stops and drops the upload and its chunks on the server. */
  async cancel() {
    if (this.finished || this.state === 'completing' || this.state === 'merging') return;
    this.generation += 1;
    if (this.hashJob) {
      this.hashJob.cancel();
      this.hashJob = null;
    }
    this.abortInflight();
    this.set('cancelled', 'Cancelling…');
    if (this.uploadID) {
      try {
        await call('DELETE', `/file/mupload/abort?${qs({ uploadID: this.uploadID })}`);
      } catch (e) {
        if (!(e instanceof ApiError) || e.status !== 404) {
          this.set('cancelled', `Cancelled here, but the server said: ${e.message}`);
          return;
        }
      }
    }
    if (this.fingerprint) forget(this);
    this.set('cancelled');
  }
}

// ---- folder trees -------------------------------------------------------------

/**
 * What a drop holds, as `[{file, dirs}]`: `dirs` are the folder names from the
 * drop down to the file; a dropped folder is walked (an empty folder comes as
 * `{file: null, dirs}`). The entries are taken before the first `await`: the
 * browser empties `dataTransfer` once the drop event returns.
 */
export async function droppedItems(dataTransfer) {
  const items = [...(dataTransfer.items || [])].filter((i) => i.kind === 'file');
  const entries = items.map((i) => (i.webkitGetAsEntry ? i.webkitGetAsEntry() : null));
  const files = [...dataTransfer.files];
  if (!entries.length || entries.some((e) => !e)) return files.map((file) => ({ file, dirs: [] }));
  const out = [];
  const walk = async (entry, dirs) => {
    if (entry.isFile) {
      out.push({ file: await new Promise((resolve, reject) => entry.file(resolve, reject)), dirs });
      return;
    }
    const here = [...dirs, entry.name];
    const reader = entry.createReader();
    let count = 0;
    // readEntries answers in batches (100 in Chromium) until an empty one.
    for (;;) {
      const batch = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
      if (!batch.length) break;
      count += batch.length;
      for (const child of batch) await walk(child, here);
    }
    if (!count) out.push({ file: null, dirs: here });
  };
  for (const entry of entries) await walk(entry, []);
  return out;
}

/** The same from a file input; a folder picked with `webkitdirectory` gives each file's relative path. */
export function pickedItems(fileList) {
  return [...fileList].map((file) => {
    const parts = (file.webkitRelativePath || '').split('/').filter(Boolean);
    return { file, dirs: parts.slice(0, -1) };
  });
}

/**
 * `ensure(dirs)`: the folder `dirs` below `base` ({id, path}), made once and
 * shared by every file in it. A folder of that name already there is reused
 * (dropping a tree again fills in what is missing, as Nextcloud and Seafile
 * merge); a file of that name makes the new folder numbered (`name (1)`).
 */
export function folderMaker(base) {
  const made = new Map();
  const ensure = (dirs) => {
    if (!dirs.length) return Promise.resolve(base);
    const key = JSON.stringify(dirs);
    if (!made.has(key)) {
      made.set(key, ensure(dirs.slice(0, -1)).then((parent) => makeOrFind(parent, dirs[dirs.length - 1])));
    }
    return made.get(key);
  };
  return ensure;
}

async function makeOrFind(parent, name) {
  const create = (onConflict) => call('POST', '/folder/create', {
    json: { name, parent: parent.id || undefined, on_conflict: onConflict },
  });
  try {
    return await create('refuse');
  } catch (e) {
    if (!(e instanceof ApiError) || e.code !== 'NAME_TAKEN') throw e;
  }
  const path = parent.path === '/' ? `/${name}` : `${parent.path}/${name}`;
  try {
    const there = await call('GET', `/folder/stat?${qs({ path })}`);
    if (there.kind === 'folder') return { id: there.id, path: there.path || path };
  } catch (e) {
    if (!(e instanceof ApiError) || e.status !== 404) throw e;
  }
  return create('rename');
}
