// SHA-1 and SHA-256 of files in one pass, computed off the main thread, and
// answers to the server's proof-of-possession challenges. The file is read in
// slices (File.slice), so only one slice is ever in memory, whatever the
// file's size. hash-wasm runs as WebAssembly (hence 'wasm-unsafe-eval' in the CSP).
//
// Messages in:  {type: 'hash', id, file} · {type: 'prove', id, file, challenge} · {type: 'cancel', id}
// Messages out: {type: 'progress', id, done} · {type: 'done', id, result}
//               {type: 'error', id, message} · {type: 'cancelled', id}
// result: {sha1, sha256} for 'hash'; the proof (hex SHA-256 of the nonce's
// bytes and the challenged ranges) for 'prove'.
'use strict';

importScripts('/static/vendor/hash-wasm/sha1.umd.min.js', '/static/vendor/hash-wasm/sha256.umd.min.js');

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
  } else if (msg.type === 'prove') {
    queue = queue.then(() => proveOne(msg.id, msg.file, msg.challenge));
  }
};

async function proveOne(id, file, challenge) {
  try {
    const hasher = await self.hashwasm.createSHA256();
    hasher.init();
    const nonce = new Uint8Array(challenge.nonce.match(/../g).map((b) => parseInt(b, 16)));
    hasher.update(nonce);
    for (const r of challenge.ranges) {
      hasher.update(new Uint8Array(await file.slice(r.first, r.last + 1).arrayBuffer()));
    }
    self.postMessage({ type: 'done', id, result: hasher.digest('hex') });
  } catch (e) {
    self.postMessage({ type: 'error', id, message: `Could not read the file: ${e && e.message ? e.message : e}` });
  }
}

async function hashOne(id, file) {
  try {
    if (cancelled.delete(id)) {
      self.postMessage({ type: 'cancelled', id });
      return;
    }
    const hasher = await self.hashwasm.createSHA1();
    const hasher256 = await self.hashwasm.createSHA256();
    hasher.init();
    hasher256.init();
    let lastReport = 0;
    for (let offset = 0; offset < file.size; offset += SLICE) {
      const slice = await file.slice(offset, Math.min(offset + SLICE, file.size)).arrayBuffer();
      const bytes = new Uint8Array(slice);
      hasher.update(bytes);
      hasher256.update(bytes);
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
    self.postMessage({ type: 'done', id, result: { sha1: hasher.digest('hex'), sha256: hasher256.digest('hex') } });
  } catch (e) {
    self.postMessage({ type: 'error', id, message: `Could not read the file: ${e && e.message ? e.message : e}` });
  }
}
