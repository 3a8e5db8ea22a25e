// One tus upload with tus-js-client in Node, as an app would send a file
// from disk: an fs.ReadStream (read in slices per PATCH), the given
// chunkSize (Infinity: one PATCH), no fingerprint store. Used by
// bench/protocols.py; tus-js-client comes from tests/tus/node_modules
// (scripts/deps tus), named by TUS_MODULES.
// Usage: node tus_upload.mjs BASE_URL AUTHORIZATION FILE CHUNK_SIZE NAME
// Prints {"seconds", "url", "fileId", "requests"} as JSON; seconds run from
// start() to onSuccess (the process's start-up is not counted).
import { createReadStream } from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(`${process.env.TUS_MODULES}/`);
const tus = require('tus-js-client');

const [base, authorization, path, chunk, name] = process.argv.slice(2);
let fileId = null;
const requests = {};
const started = performance.now();
const url = await new Promise((resolve, reject) => {
  const upload = new tus.Upload(createReadStream(path), {
    endpoint: `${base}/tus/`,
    headers: { Authorization: authorization },
    chunkSize: chunk === 'Infinity' ? Infinity : Number(chunk),
    retryDelays: [],
    storeFingerprintForResuming: false,
    metadata: { filename: name, filetype: 'application/octet-stream' },
    onAfterResponse(req, res) {
      requests[req.getMethod()] = (requests[req.getMethod()] || 0) + 1;
      const id = res.getHeader('Pan-File-Id');
      if (id) fileId = id;
    },
    onSuccess: () => resolve(upload.url),
    onError: reject,
  });
  upload.start();
});
const seconds = (performance.now() - started) / 1000;
console.log(JSON.stringify({ seconds, url, fileId, requests }));
