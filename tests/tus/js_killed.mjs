// tus-js-client in a Node process that dies (SIGKILL, no goodbye) part-way,
// and a new process that finds the upload in the URL storage the first left
// on disk (FileUrlStorage) and resumes it: findPreviousUploads() and
// resumeFromPreviousUpload(), as a Node app that survives restarts would.
//
// Usage: node js_killed.mjs MODE BASE_URL AUTHORIZATION FILE NAME FOLDER STORE [N]
//   kill-after N  256 KiB PATCHes; once N bytes are accepted, the process
//                 prints {"killedAt", "url"} and SIGKILLs itself.
//   hold N        the default chunkSize (one PATCH for the whole file); the
//                 network stalls after the PATCH's first N bytes: once they
//                 are out of the process (in the kernel), it prints
//                 {"heldAt", "url"} and waits to be killed.
//   resume 256k   a new process, 256 KiB PATCHes;
//   resume whole  a new process, the default chunkSize.
//                 Prints {"url", "fileId", "previous", "resumedFrom", "firstPatchAt"}.
import { readFileSync, writeSync } from 'node:fs';
import { Readable } from 'node:stream';
import * as tus from 'tus-js-client';

const [mode, base, authorization, path, name, folder, store, arg] = process.argv.slice(2);
const data = readFileSync(path);
const say = (obj) => writeSync(1, `${JSON.stringify(obj)}\n`); // synchronous: before any kill

const options = {
  endpoint: `${base}/tus/`,
  headers: { Authorization: authorization },
  retryDelays: [0, 500],
  urlStorage: new tus.FileUrlStorage(store),
  metadata: { filename: name, filetype: 'application/octet-stream', folder },
};

/** The default http stack, with a network that stalls after the first
 * `at` bytes of a PATCH body: those go out, the rest never does. Once they
 * have left the process (nothing buffered in the stream, the request or
 * the socket), `onHeld` is called. */
class StallingStack {
  constructor(at, onHeld) {
    this.inner = new tus.DefaultHttpStack();
    this.at = at;
    this.onHeld = onHeld;
  }

  getName() {
    return 'StallingStack';
  }

  createRequest(method, url) {
    const req = this.inner.createRequest(method, url);
    if (method !== 'PATCH') return req;
    const send = req.send.bind(req);
    req.send = (body) => {
      const held = new Readable({ read() {} });
      held.push(Buffer.from(body.subarray(0, this.at)));
      const sent = send(held);
      const out = setInterval(() => {
        const http = req.getUnderlyingObject();
        const pipes = held._readableState.pipes ?? [];
        const flushed =
          http?.socket &&
          !http.socket.connecting &&
          held.readableLength === 0 &&
          pipes.every((p) => p.readableLength === 0 && p.writableLength === 0) &&
          http.writableLength === 0 &&
          http.socket.writableLength === 0;
        if (flushed) {
          clearInterval(out);
          this.onHeld();
        }
      }, 5);
      return sent;
    };
    return req;
  }
}

if (mode === 'kill-after' || mode === 'hold') {
  const at = Number(arg);
  let upload;
  const first = {
    ...options,
    onSuccess: () => {
      say({ error: 'the first process should have died before the end' });
      process.exit(1);
    },
    onError: (e) => {
      say({ error: String(e) });
      process.exit(1);
    },
  };
  if (mode === 'kill-after') {
    first.chunkSize = 256 * 1024;
    first.onChunkComplete = (_chunk, accepted) => {
      if (accepted >= at) {
        say({ killedAt: accepted, url: upload.url });
        process.kill(process.pid, 'SIGKILL');
      }
    };
  } else {
    first.httpStack = new StallingStack(at, () => say({ heldAt: at, url: upload.url }));
  }
  upload = new tus.Upload(data, first);
  upload.start();
} else if (mode === 'resume') {
  let fileId = null;
  let resumedFrom = null;
  let firstPatchAt = null;
  const upload = new tus.Upload(data, {
    ...options,
    ...(arg === '256k' ? { chunkSize: 256 * 1024 } : {}),
    onBeforeRequest(req) {
      if (req.getMethod() === 'PATCH' && firstPatchAt === null) firstPatchAt = Number(req.getHeader('Upload-Offset'));
    },
    onAfterResponse(req, res) {
      if (req.getMethod() === 'HEAD' && resumedFrom === null) resumedFrom = Number(res.getHeader('Upload-Offset'));
      const id = res.getHeader('Pan-File-Id');
      if (id) fileId = id;
    },
  });
  const previous = await upload.findPreviousUploads();
  if (previous.length !== 1) {
    say({ error: `the URL storage holds ${previous.length} uploads of this file, not 1` });
    process.exit(1);
  }
  upload.resumeFromPreviousUpload(previous[0]);
  await new Promise((resolve, reject) => {
    upload.options.onSuccess = resolve;
    upload.options.onError = reject;
    upload.start();
  });
  say({ url: upload.url, fileId, previous: previous.length, resumedFrom, firstPatchAt });
} else {
  say({ error: `unknown mode ${mode}` });
  process.exit(2);
}
