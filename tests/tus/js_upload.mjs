// Uploads a file to pan's /tus/ with tus-js-client, as a browser or Node
// app would: the first run stops half-way (as if the page closed), a
// second run resumes from the server's offset (HEAD) and finishes.
// With a sixth argument N, one run with parallelUploads: N instead (the
// concatenation extension: N partial uploads and a final one).
// Usage: node js_upload.mjs BASE_URL AUTHORIZATION FILE NAME FOLDER [N]
// Prints {"url", "fileId", "resumedFrom"} as JSON.
import { readFileSync } from 'node:fs';
import * as tus from 'tus-js-client';

const [base, authorization, path, name, folder, parallel] = process.argv.slice(2);
const data = readFileSync(path);
let fileId = null;
const common = {
  endpoint: `${base}/tus/`,
  headers: { Authorization: authorization },
  chunkSize: 256 * 1024,
  retryDelays: [0, 500],
  storeFingerprintForResuming: false,
  metadata: { filename: name, filetype: 'application/octet-stream', folder },
  onAfterResponse(_req, res) {
    const id = res.getHeader('Pan-File-Id');
    if (id) fileId = id;
  },
};

if (parallel) {
  const started = Date.now();
  const url = await new Promise((resolve, reject) => {
    const upload = new tus.Upload(data, {
      ...common,
      chunkSize: Infinity,
      parallelUploads: Number(parallel),
      onSuccess: () => resolve(upload.url),
      onError: reject,
    });
    upload.start();
  });
  console.log(JSON.stringify({ url, fileId, seconds: (Date.now() - started) / 1000 }));
  process.exit(0);
}

// First run: stop once half the file is in.
const url = await new Promise((resolve, reject) => {
  const upload = new tus.Upload(data, {
    ...common,
    onChunkComplete(_chunk, accepted) {
      if (accepted >= data.length / 2) upload.abort().then(() => resolve(upload.url), reject);
    },
    onSuccess: () => reject(new Error('the first run should have stopped half-way')),
    onError: reject,
  });
  upload.start();
});

// Second run: the same upload URL, resumed where the server says.
let resumedFrom = null;
await new Promise((resolve, reject) => {
  const upload = new tus.Upload(data, {
    ...common,
    uploadUrl: url,
    onAfterResponse(req, res) {
      if (req.getMethod() === 'HEAD' && resumedFrom === null) resumedFrom = Number(res.getHeader('Upload-Offset'));
      common.onAfterResponse(req, res);
    },
    onSuccess: resolve,
    onError: reject,
  });
  upload.start();
});
console.log(JSON.stringify({ url, fileId, resumedFrom }));
