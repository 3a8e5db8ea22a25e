// Uppy (@uppy/core + @uppy/tus) on a page of another origin, in Debian's
// headless Chromium (playwright-core), uploading into pan through an upload
// link. Driven by tests/e2e/tus_clients.rs:
//
// 1. Bundles uppy/page.js with esbuild and serves uppy/index.html and it
//    from two origins of its own (127.0.0.1, two free ports), then prints
//    {"allowed": ORIGIN, "refused": ORIGIN}: the test starts pan with
//    PAN_TUS_CORS_ORIGINS naming the first only.
// 2. Reads one line of JSON from stdin: {"pan": BASE_URL, "link": LINK, "file": PATH}.
// 3. On each origin, opens the page, picks the file in its file input (Uppy
//    uploads at once) and waits for Uppy's `complete`.
// 4. Prints {"allowed": RUN, "refused": RUN}, each RUN being
//    {"uploaded": {successful, failed}, "requests": [{method, status,
//    allowOrigin}], "failed": [{method, error}], "console": [text]}.
import { existsSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { createInterface } from 'node:readline';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { chromium } from 'playwright-core';

const CHROMIUM = '/usr/bin/chromium';
const here = join(dirname(fileURLToPath(import.meta.url)), 'uppy');
const say = (obj) => console.log(JSON.stringify(obj));
if (!existsSync(CHROMIUM)) {
  say({ error: `${CHROMIUM} is missing: run scripts/deps tus (it installs Debian's chromium)` });
  process.exit(1);
}

const bundled = await build({
  entryPoints: [join(here, 'page.js')],
  bundle: true,
  format: 'esm',
  target: 'chrome120',
  write: false,
  logLevel: 'error',
});
const files = {
  '/': ['text/html; charset=utf-8', readFileSync(join(here, 'index.html'))],
  '/page.js': ['text/javascript; charset=utf-8', bundled.outputFiles[0].contents],
};

/** A static server of the page on 127.0.0.1 at a free port: its origin. */
async function origin() {
  const server = createServer((req, res) => {
    const file = files[new URL(req.url, 'http://x').pathname];
    if (!file) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': file[0], 'cache-control': 'no-store' }).end(file[1]);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, origin: `http://127.0.0.1:${server.address().port}` };
}

const allowed = await origin();
const refused = await origin();
say({ allowed: allowed.origin, refused: refused.origin });

const lines = createInterface({ input: process.stdin });
const { pan, link, file } = JSON.parse(await new Promise((resolve) => lines.once('line', resolve)));
lines.close();

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  args: [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
  ],
});

/** Opens the page at `from`, picks the file and waits for Uppy's verdict. */
async function run(from) {
  const context = await browser.newContext();
  const page = await context.newPage();
  const out = { requests: [], failed: [], console: [] };
  const reading = [];
  page.on('console', (m) => out.console.push(m.text()));
  page.on('pageerror', (e) => out.console.push(`page error: ${e.message}`));
  page.on('requestfinished', (req) => {
    if (!req.url().startsWith(pan)) return;
    const seen = { method: req.method() };
    out.requests.push(seen);
    reading.push((async () => {
      const res = await req.response();
      seen.status = res?.status() ?? null;
      seen.allowOrigin = res ? ((await res.allHeaders())['access-control-allow-origin'] ?? null) : null;
    })());
  });
  page.on('requestfailed', (req) => {
    if (req.url().startsWith(pan)) out.failed.push({ method: req.method(), error: req.failure()?.errorText ?? '?' });
  });
  await page.goto(`${from}/?${new URLSearchParams({ pan, link })}`);
  await page.setInputFiles('#files', file);
  await page.waitForFunction(() => window.uploaded, null, { timeout: 60_000 });
  out.uploaded = await page.evaluate(() => window.uploaded);
  await Promise.all(reading);
  await context.close();
  return out;
}

try {
  say({ allowed: await run(allowed.origin), refused: await run(refused.origin) });
} finally {
  await browser.close();
  allowed.server.close();
  refused.server.close();
}
process.exit(0);
