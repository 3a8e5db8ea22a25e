// SHA-1 of files, computed off the main thread. The file is read in slices
// (File.slice), so only one slice is ever in memory, whatever the file's size.
// hash-wasm's SHA-1 runs as WebAssembly (hence 'wasm-unsafe-eval' in the CSP).
//
// Messages in:  {type: 'hash', id, file} · {type: 'cancel', id}
// Messages out: {type: 'progress', id, done} · {type: 'done', id, hash}
//               {type: 'error', id, message} · {type: 'cancelled', id}
'use strict';

importScripts('/static/vendor/hash-wasm/sha1.umd.min.js');

const SLICE = 4 * 1024 * 1024;
const cancelled = new Set();
let queue = Promise.resolve();

self.onmessage = (event) => {
  const msg = event.data;
  if (msg.type === 'cancel') {
    cancelled.add(msg.id);
  } else if (msg.type === 'hash') {
    // One file at a time: hashing is bound by the disk, not by cores.
    queue = queue.then(() => hashOne(msg.id, msg.file));
  }
};

async function hashOne(id, file) {
  try {
    if (cancelled.delete(id)) {
      self.postMessage({ type: 'cancelled', id });
      return;
    }
    const hasher = await self.hashwasm.createSHA1();
    hasher.init();
    let lastReport = 0;
    for (let offset = 0; offset < file.size; offset += SLICE) {
      const slice = await file.slice(offset, Math.min(offset + SLICE, file.size)).arrayBuffer();
      hasher.update(new Uint8Array(slice));
      if (cancelled.delete(id)) {
        self.postMessage({ type: 'cancelled', id });
        return;
      }
      const done = Math.min(offset + SLICE, file.size);
      const now = Date.now();
      if (now - lastReport > 100 || done === file.size) {
        lastReport = now;
        self.postMessage({ type: 'progress', id, done });
      }
    }
    self.postMessage({ type: 'done', id, hash: hasher.digest('hex') });
  } catch (e) {
    self.postMessage({ type: 'error', id, message: `Could not read the file: ${e && e.message ? e.message : e}` });
  }
}
