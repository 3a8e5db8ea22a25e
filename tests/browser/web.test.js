// End-to-end tests of pan's web page in Debian's headless Chromium.
//
// run.sh starts two api processes and sets PAN_URL (1 MiB chunks) and
// PAN_SMALL_URL (1 MiB file-size limit). The tests run in order and share the
// first user's account: sign up → upload and resume → instant → list. The
// folder tests use a second account of their own (FOLK).

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const BASE = process.env.PAN_URL;
const SMALL = process.env.PAN_SMALL_URL;
const ARTIFACTS = process.env.PAN_ARTIFACTS || join(import.meta.dirname, 'artifacts');
assert.ok(BASE && SMALL, 'PAN_URL and PAN_SMALL_URL must be set (run tests/browser/run.sh)');

const MiB = 1024 * 1024;
const CHUNKS = 40;
const PASSWORD = 'correct horse battery';
const USER = `alice-${Date.now().toString(36)}`;

let browser;
let tmp;
/** Problems the page itself reported: uncaught errors and CSP refusals. */
const pageProblems = [];

const sha1 = (buf) => createHash('sha1').update(buf).digest('hex');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function until(what, fn, timeout = 30_000) {
  const end = Date.now() + timeout;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** A plain API call from node (to check what the page did, or to set things up). */
async function api(base, method, path, { token, json, body } = {}) {
  const headers = { accept: 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  if (json !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(base + path, { method, headers, body: json !== undefined ? JSON.stringify(json) : body });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text && res.headers.get('content-type')?.includes('json') ? JSON.parse(text) : text };
}

async function newPage({ width = 1100, height = 800 } = {}) {
  const context = await browser.newContext({ viewport: { width, height }, acceptDownloads: true });
  const page = await context.newPage();
  page.on('pageerror', (e) => pageProblems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && /Content Security Policy|Refused to/i.test(m.text())) pageProblems.push(m.text());
  });
  return page;
}

async function signInThroughForm(page, base, username, password = PASSWORD) {
  await page.goto(`${base}/usr/signin`);
  const form = page.locator('#view-signin');
  await form.getByLabel('Username').fill(username);
  await form.getByLabel('Password').fill(password);
  await form.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL(`${base}/`);
  await page.locator('#who-name', { hasText: username }).waitFor();
}

const tokenOf = (page) => page.evaluate(() => sessionStorage.getItem('pan.token'));

before(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'pan-browser-'));
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    // playwright gives every launch a fresh, empty user-data-dir.
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  });
});

after(async () => {
  await browser?.close();
  rmSync(tmp, { recursive: true, force: true });
});

test('the page and the API share /usr/signin: GET asking for HTML gets the page, POST gets JSON', async () => {
  const html = await fetch(`${BASE}/usr/signin`, { headers: { accept: 'text/html' } });
  assert.equal(html.status, 200);
  assert.match(html.headers.get('content-type'), /text\/html/);
  const csp = html.headers.get('content-security-policy');
  assert.match(csp, /script-src 'self' 'wasm-unsafe-eval'/);
  assert.match(csp, /frame-ancestors 'none'/);
  assert.doesNotMatch(await html.text(), /<script>|style=/);

  const json = await api(BASE, 'GET', '/usr/signin');
  assert.equal(json.status, 405);
  assert.equal(json.body.code, 'METHOD_NOT_ALLOWED');

  const post = await api(BASE, 'POST', '/usr/signin', { json: { username: 'nobody-here', password: 'whatever1' } });
  assert.equal(post.status, 401);
  assert.equal(post.body.code, 'BAD_CREDENTIALS');

  assert.equal((await fetch(`${BASE}/`)).status, 200);
  assert.equal((await fetch(`${BASE}/static/app.js`)).headers.get('content-type'), 'text/javascript; charset=utf-8');
  assert.equal((await api(BASE, 'GET', '/static/nothing.js')).body.code, 'NOT_FOUND');
});

test('sign up and sign in through the forms; a wrong password shows the API message', async () => {
  const page = await newPage();
  await page.goto(`${BASE}/usr/signup`);
  const signup = page.locator('#view-signup');
  await signup.getByLabel('Username').fill(USER);
  await signup.getByLabel('Password').fill(PASSWORD);
  await signup.getByRole('button', { name: 'Sign up' }).click();
  await page.waitForURL(`${BASE}/usr/signin`);
  assert.match(await page.locator('#flash').textContent(), /created/);

  // Taken username: the API's message, as is.
  const taken = await api(BASE, 'POST', '/usr/signup', { json: { username: USER, password: PASSWORD } });
  await page.goto(`${BASE}/usr/signup`);
    await signup.getByLabel('Username').fill(USER);
  await signup.getByLabel('Password').fill(PASSWORD);
  await signup.getByRole('button', { name: 'Sign up' }).click();
  await page.locator('#signup-error', { hasText: taken.body.message }).waitFor();

  // Wrong password.
  const wrong = await api(BASE, 'POST', '/usr/signin', { json: { username: USER, password: 'not the password' } });
  assert.equal(wrong.status, 401);
  await page.goto(`${BASE}/usr/signin`);
  const signin = page.locator('#view-signin');
  await signin.getByLabel('Username').fill(USER);
  await signin.getByLabel('Password').fill('not the password');
  await signin.getByRole('button', { name: 'Sign in' }).click();
  await page.locator('#signin-error', { hasText: wrong.body.message }).waitFor();
  assert.equal(await tokenOf(page), null);

  await signInThroughForm(page, BASE, USER);
  assert.match(await tokenOf(page), /^[0-9a-f]{64}$/);
  // The profile loads after the sign-in view: wait for it, then check it.
  await page.locator('#profile-count', { hasText: /^\d+$/ }).waitFor();
  assert.equal(await page.locator('#profile-count').textContent(), '0');
  assert.ok(page.url().indexOf((await tokenOf(page))) < 0);

  // Sign out revokes the token.
  const token = await tokenOf(page);
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.waitForURL(`${BASE}/usr/signin`);
  assert.equal(await tokenOf(page), null);
  assert.equal((await api(BASE, 'GET', '/usr/info', { token })).status, 401);
  await page.context().close();
});

let bigPath;
let bigSha1;

test('a 40 MiB upload interrupted by a reload resumes without resending chunks, completes and downloads intact', async () => {
  const data = randomBytes(CHUNKS * MiB);
  bigSha1 = sha1(data);
  bigPath = join(tmp, 'big.bin');
  writeFileSync(bigPath, data);

  const page = await newPage();
  await signInThroughForm(page, BASE, USER);
  await page.getByRole('link', { name: 'Upload', exact: true }).click();
  await page.waitForURL(`${BASE}/file/upload`);
  assert.equal(await page.getByLabel('Chunks sent at once').inputValue(), '4');

  // Every uppart request and every acknowledged chunk, before and after the reload.
  let phase = 'before';
  const requested = { before: [], after: [] };
  const acked = { before: new Set(), after: new Set() };
  const chunkOf = (url) => Number(new URL(url).searchParams.get('chkidx'));
  page.on('request', (r) => r.url().includes('/file/mupload/uppart') && requested[phase].push(chunkOf(r.url())));
  page.on('response', (r) => r.url().includes('/file/mupload/uppart') && r.ok() && acked[phase].add(chunkOf(r.url())));

  // Slow the chunks down (about 10 a second) so the reload lands half-way.
  await page.route('**/file/mupload/uppart?*', async (route) => {
    await sleep(400);
    await route.continue().catch(() => {});
  });

  await page.locator('#file-input').setInputFiles(bigPath);
  const item = page.locator('li.upload[data-name="big.bin"]');
  await until('a third of the chunks', () => acked.before.size >= 14, 60_000);
  await page.screenshot({ path: join(ARTIFACTS, 'upload-mid.png'), fullPage: true });
  const statsText = await item.locator('.stats').textContent();
  assert.match(statsText, /MiB of 40\.0 MiB · .*\/s · .* left/);
  const uploadID = await item.getAttribute('data-upload-id');
  assert.match(uploadID, /^[0-9a-f]{32}$/);

  await page.reload();
  phase = 'after';
  const token = await tokenOf(page);
  assert.ok(token, 'the token survives a reload (sessionStorage)');
  const held = await api(BASE, 'GET', `/file/mupload/status?uploadID=${uploadID}`, { token });
  assert.equal(held.status, 200);
  assert.equal(held.body.state, 'uploading');
  for (const i of acked.before) assert.ok(held.body.uploaded.includes(i), `chunk ${i} was acknowledged before the reload`);
  assert.ok(held.body.uploaded.length < CHUNKS, 'the reload came half-way');
  // The page remembers the unfinished upload.
  await page.locator('#unfinished-list', { hasText: 'big.bin' }).waitFor();

  // Pick the same file again: init answers `resume` with the chunks the server holds.
  const initAnswer = page.waitForResponse((r) => r.url().endsWith('/file/mupload/init'));
  await page.locator('#file-input').setInputFiles(bigPath);
  const init = await (await initAnswer).json();
  assert.equal(init.status, 'resume');
  assert.equal(init.uploadID, uploadID);
  const resumedFrom = new Set(init.uploaded);
  for (const i of held.body.uploaded) assert.ok(resumedFrom.has(i));
  await item.locator('.stats', { hasText: `resumed: ${resumedFrom.size} of ${CHUNKS} chunks` }).waitFor();
  await page.screenshot({ path: join(ARTIFACTS, 'upload-resumed.png'), fullPage: true });
  await page.unroute('**/file/mupload/uppart?*');
  await item.and(page.locator('[data-state="done"]')).waitFor({ timeout: 60_000 });

  // No chunk the server held was sent again; each missing one was sent once.
  assert.deepEqual(requested.after.filter((i) => resumedFrom.has(i)), [], 'chunks sent before the reload were sent again');
  assert.equal(requested.after.length, CHUNKS - resumedFrom.size);
  assert.equal(new Set([...resumedFrom, ...acked.after]).size, CHUNKS);
  assert.equal(await page.locator('#unfinished').isHidden(), true);

  const status = await api(BASE, 'GET', `/file/mupload/status?uploadID=${uploadID}`, { token });
  assert.equal(status.body.state, 'done');
  assert.equal(status.body.file.filehash, bigSha1);

  // The list shows it; the download has the source's SHA-1.
  await page.getByRole('link', { name: 'Files', exact: true }).click();
  const row = page.locator('li.file[data-name="big.bin"]');
  await row.waitFor();
  assert.match(await row.textContent(), /40\.0 MiB/);
  assert.equal(await page.locator('#profile-count').textContent(), '1');
  assert.equal(await page.locator('#profile-bytes').textContent(), '40.0 MiB');
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.getByRole('button', { name: 'Download big.bin' }).click(),
  ]);
  assert.equal(download.suggestedFilename(), 'big.bin');
  const saved = join(tmp, 'downloaded.bin');
  await download.saveAs(saved);
  assert.equal(sha1(readFileSync(saved)), bigSha1);
  assert.ok(!download.url().includes(token), 'no token in the download URL');
  assert.match(download.url(), /\/file\/signed\?/, 'a signed URL from /file/downloadurl');
  await page.context().close();
});

test('content another user stored finishes as instant once the page proves it holds the bytes', async () => {
  const other = `bob-${Date.now().toString(36)}`;
  assert.equal((await api(BASE, 'POST', '/usr/signup', { json: { username: other, password: PASSWORD } })).status, 201);
  const page = await newPage();
  await signInThroughForm(page, BASE, other);
  await page.goto(`${BASE}/file/upload`);
  const copy = join(tmp, 'big-copy.bin');
  writeFileSync(copy, readFileSync(bigPath));
  const uppart = [];
  const proofs = [];
  page.on('request', (r) => r.url().includes('/file/mupload/uppart') && uppart.push(r.url()));
  page.on('response', (r) => r.url().includes('/file/mupload/prove') && proofs.push(r.json()));
  // Chunks at the pace of a slow link (each held 250 ms, 4 at a time: 2.5 s
  // for all 40), so that hashing 40 MiB (well under a second) finishes first
  // however loaded the machine: over loopback the chunks could all be gone
  // before the hash, and the test would measure a race.
  await page.route('**/file/mupload/uppart?*', async (route) => {
    await sleep(250);
    await route.continue().catch(() => {});
  });
  await page.locator('#file-input').setInputFiles(copy);
  const item = page.locator('li.upload[data-name="big-copy.bin"]');
  await item.and(page.locator('[data-state="instant"]')).waitFor({ timeout: 30_000 });
  assert.match(await item.locator('.status').textContent(), /already stored/);
  // Chunks go out while the file is hashed; the proof stops them well before the end.
  assert.ok(uppart.length < CHUNKS, `${uppart.length} chunks sent before the upload became instant`);
  const answers = await Promise.all(proofs);
  assert.equal(answers.length, 1, 'one answer to the challenge');
  assert.equal(answers[0].status, 'instant');
  await page.goto(`${BASE}/`);
  await page.locator('li.file[data-name="big-copy.bin"]').waitFor();
  await page.context().close();
});

test('chunks go out before the file is hashed: init names no hash, declare follows while they flow', async () => {
  // A user of its own: the folder view's test counts USER's files.
  const user = `pat-${Date.now().toString(36)}`;
  assert.equal((await api(BASE, 'POST', '/usr/signup', { json: { username: user, password: PASSWORD } })).status, 201);
  const page = await newPage();
  await signInThroughForm(page, BASE, user);
  await page.goto(`${BASE}/file/upload`);
  const file = join(tmp, 'parallel.bin');
  const data = randomBytes(8 * MiB + 5);
  writeFileSync(file, data);
  const log = [];
  let initBody = null;
  page.on('request', (r) => {
    const url = r.url();
    if (url.endsWith('/file/mupload/init')) initBody = r.postDataJSON();
    for (const op of ['uppart', 'declare', 'complete']) if (url.includes(`/file/mupload/${op}`)) log.push(`${op} request`);
  });
  page.on('response', (r) => r.url().includes('/file/mupload/uppart') && r.ok() && log.push('uppart acked'));
  // Hold the declaration until chunks were received without it: sending
  // does not wait for the hash.
  await page.route('**/file/mupload/declare?*', async (route) => {
    await until('chunks received before the declaration', () => log.filter((e) => e === 'uppart acked').length >= 3);
    log.push('declare released');
    await route.continue().catch(() => {});
  });
  await page.locator('#file-input').setInputFiles(file);
  const item = page.locator('li.upload[data-name="parallel.bin"]');
  await item.and(page.locator('[data-state="done"]')).waitFor({ timeout: 60_000 });
  assert.equal(initBody.filehash, undefined, 'init names no hash');
  assert.match(initBody.fingerprint, /^[!-~]{1,128}$/);
  assert.ok(log.indexOf('uppart request') < log.indexOf('declare request'), log.join(', '));
  assert.ok(log.indexOf('declare released') < log.indexOf('complete request'), 'complete waits for the declaration');
  const token = await tokenOf(page);
  const uploadID = await item.getAttribute('data-upload-id');
  const status = await api(BASE, 'GET', `/file/mupload/status?uploadID=${uploadID}`, { token });
  assert.equal(status.body.state, 'done');
  assert.equal(status.body.file.filehash, sha1(data));
  assert.equal(status.body.filehash, sha1(data));
  await page.unroute('**/file/mupload/declare?*');
  await page.context().close();
});

test('an upload pauses, resumes and cancels (cancel drops it on the server)', async () => {
  const page = await newPage();
  await signInThroughForm(page, BASE, USER);
  await page.goto(`${BASE}/file/upload`);
  const file = join(tmp, 'pausable.bin');
  writeFileSync(file, randomBytes(12 * MiB));
  let sent = 0;
  page.on('request', (r) => r.url().includes('/file/mupload/uppart') && (sent += 1));
  await page.route('**/file/mupload/uppart?*', async (route) => {
    await sleep(300);
    await route.continue().catch(() => {});
  });
  await page.locator('#file-input').setInputFiles(file);
  const item = page.locator('li.upload[data-name="pausable.bin"]');
  await until('a few chunks', () => sent >= 3);
  await page.getByRole('button', { name: 'Pause pausable.bin' }).click();
  await item.and(page.locator('[data-state="paused"]')).waitFor();
  const atPause = sent;
  await sleep(800);
  assert.equal(sent, atPause, 'no chunk goes out while paused');
  await page.getByRole('button', { name: 'Resume pausable.bin' }).click();
  await item.and(page.locator('[data-state="uploading"]')).waitFor();
  await until('more chunks after resume', () => sent > atPause);
  const uploadID = await item.getAttribute('data-upload-id');
  const aborted = page.waitForResponse((r) => r.url().includes('/file/mupload/abort'));
  await page.getByRole('button', { name: 'Cancel pausable.bin' }).click();
  assert.equal((await aborted).status(), 204);
  await item.and(page.locator('[data-state="cancelled"]')).waitFor();
  const token = await tokenOf(page);
  assert.equal((await api(BASE, 'GET', `/file/mupload/status?uploadID=${uploadID}`, { token })).status, 404);
  await page.context().close();
});

test('the folder view sorts, loads more, renames and deletes into the trash (with a confirmation)', async () => {
  const page = await newPage();
  await signInThroughForm(page, BASE, USER);
  const token = await tokenOf(page);
  // 50 small files through the API: with big.bin, one more than a page.
  for (let i = 0; i < 50; i++) {
    const form = new FormData();
    form.append('file', new Blob([`small file ${i} ${USER}`]), `small-${String(i).padStart(2, '0')}.txt`);
    const res = await api(BASE, 'POST', '/file/upload', { token, body: form });
    assert.equal(res.status, 201, JSON.stringify(res.body));
  }
  await page.reload();
  // By name, ascending: big.bin leads; 50 rows, then "Load more" brings the last one.
  await page.locator('#files-count', { hasText: '50+ items' }).waitFor();
  assert.equal(await page.locator('li.file').count(), 50);
  assert.equal(await page.locator('li.file').first().getAttribute('data-name'), 'big.bin');
  assert.equal(await page.locator('li.file').last().getAttribute('data-name'), 'small-48.txt');
  await page.getByRole('button', { name: 'Load more' }).click();
  await page.locator('#files-count', { hasText: /^51 items$/ }).waitFor();
  assert.equal(await page.locator('li.file').last().getAttribute('data-name'), 'small-49.txt');
  assert.equal(await page.getByRole('button', { name: 'Load more' }).isHidden(), true);
  // Newest first (big.bin, uploaded by an earlier test, is not on the first page), then oldest first.
  await page.getByRole('button', { name: 'Sort by time' }).click();
  await page.getByRole('button', { name: 'Sort by time, descending' }).waitFor();
  await page.locator('#files-count', { hasText: '50+ items' }).waitFor();
  assert.equal(await page.locator('li.file[data-name="big.bin"]').count(), 0);
  await page.getByRole('button', { name: 'Sort by time, descending' }).click();
  await page.getByRole('button', { name: 'Sort by time, ascending' }).waitFor();
  await page.locator('li.file').first().and(page.locator('[data-name="big.bin"]')).waitFor();
  // Largest first.
  await page.getByRole('button', { name: 'Sort by size' }).click();
  await page.getByRole('button', { name: 'Sort by size, descending' }).waitFor();
  await page.locator('li.file').first().and(page.locator('[data-name="big.bin"]')).waitFor();
  // Then the small files of one byte more ("small file 10 …" and up).
  assert.match(await page.locator('li.file').nth(1).getAttribute('data-name'), /^small-[1-4]\d\.txt$/);
  await page.getByRole('button', { name: 'Sort by name' }).click();
  await page.getByRole('button', { name: 'Sort by name, ascending' }).waitFor();
  await page.locator('li.file').first().and(page.locator('[data-name="big.bin"]')).waitFor();
  assert.equal(await page.locator('li.file').nth(1).getAttribute('data-name'), 'small-00.txt');
  await page.screenshot({ path: join(ARTIFACTS, 'files.png'), fullPage: true });

  // Download without /file/downloadurl (an older server): the blob fallback.
  await page.route('**/file/downloadurl?*', (route) =>
    route.fulfill({ status: 404, contentType: 'application/json', body: '{"code":"NOT_FOUND","message":"no such route"}' }));
  const [fallback] = await Promise.all([
    page.waitForEvent('download'),
    page.getByRole('button', { name: 'Download small-00.txt' }).click(),
  ]);
  assert.match(fallback.url(), /^blob:/);
  await fallback.saveAs(join(tmp, 'small-00.txt'));
  assert.equal(readFileSync(join(tmp, 'small-00.txt'), 'utf8'), `small file 0 ${USER}`);
  await page.unroute('**/file/downloadurl?*');

  // Rename; a taken name shows the API's refusal.
  await page.getByRole('button', { name: 'Rename big.bin' }).click();
  await page.getByLabel('New name for big.bin').fill('small-01.txt');
  await page.getByRole('button', { name: 'Save' }).click();
  await page.locator('li.file[data-name="big.bin"] .row-error', { hasText: /taken/i }).waitFor();
  await page.getByLabel('New name for big.bin').fill('renamed.bin');
  await page.getByRole('button', { name: 'Save' }).click();
  await page.locator('li.file[data-name="renamed.bin"]').waitFor();
  const listed = await api(BASE, 'GET', '/file/query?limit=100', { token });
  assert.ok(listed.body.files.some((f) => f.filename === 'renamed.bin' && f.filehash === bigSha1));

  // Delete: cancel first, then confirm; it goes to the trash.
  await page.getByRole('button', { name: 'Delete renamed.bin' }).click();
  await page.getByRole('dialog').waitFor();
  assert.match(await page.locator('#confirm-text').textContent(), /moved to the trash/);
  await page.getByRole('dialog').getByRole('button', { name: 'Cancel' }).click();
  assert.equal(await page.locator('li.file[data-name="renamed.bin"]').count(), 1);
  await page.getByRole('button', { name: 'Delete renamed.bin' }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Move to trash' }).click();
  await page.locator('li.file[data-name="renamed.bin"]').waitFor({ state: 'detached' });
  await page.locator('#profile-count', { hasText: /^50$/ }).waitFor();
  await page.locator('#profile-trash', { hasText: '1 (40.0 MiB)' }).waitFor();
  const trashed = await api(BASE, 'GET', '/trash/list', { token });
  assert.deepEqual(trashed.body.entries.map((t) => t.entry.name), ['renamed.bin']);

  // A phone-sized screen.
  await page.setViewportSize({ width: 360, height: 740 });
  await page.screenshot({ path: join(ARTIFACTS, 'files-360px.png'), fullPage: false });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `no sideways scrolling at 360 px (overflow ${overflow}px)`);
  await page.context().close();
});

// ---- folders and the trash (their own account) ------------------------------------

const FOLK = `dora-${Date.now().toString(36)}`;
let folkToken;

/** The entry at `path` for FOLK (or the API's error). */
const stat = (path) => api(BASE, 'GET', `/folder/stat?path=${encodeURIComponent(path)}`, { token: folkToken });

async function folkPage(size) {
  const page = await newPage(size);
  await signInThroughForm(page, BASE, FOLK);
  return page;
}

async function putFile(name, text, folder) {
  const form = new FormData();
  form.append('file', new Blob([text]), name);
  if (folder) form.append('folder', folder);
  const res = await api(BASE, 'POST', '/file/upload', { token: folkToken, body: form });
  assert.equal(res.status, 201, JSON.stringify(res.body));
  return res.body;
}

/** Waits until the breadcrumbs read `names`. */
async function expectCrumbs(page, names) {
  const want = JSON.stringify(names);
  let got;
  await until(`crumbs ${want}`, async () => (got = JSON.stringify(await page.locator('#crumbs li').allTextContents())) === want, 5000)
    .catch(() => assert.equal(got, want));
}

test('folders: make one, open it, upload into it; breadcrumbs, reload, back and forward keep the open folder', async () => {
  assert.equal((await api(BASE, 'POST', '/usr/signup', { json: { username: FOLK, password: PASSWORD } })).status, 201);
  folkToken = (await api(BASE, 'POST', '/usr/signin', { json: { username: FOLK, password: PASSWORD } })).body.token;
  const page = await folkPage();
  await page.locator('#files-empty').waitFor();

  await page.getByRole('button', { name: 'New folder' }).click();
  await page.getByLabel('Name of the new folder').fill('Projects');
  await page.getByRole('button', { name: 'Create', exact: true }).click();
  const projectsRow = page.locator('li.folder[data-name="Projects"]');
  await projectsRow.waitFor();
  const projects = (await stat('/Projects')).body;
  assert.equal(projects.kind, 'folder');
  // The same name again is refused, with the API's message.
  await page.getByRole('button', { name: 'New folder' }).click();
  await page.getByLabel('Name of the new folder').fill('Projects');
  await page.getByRole('button', { name: 'Create', exact: true }).click();
  await page.locator('#new-folder-error', { hasText: /taken/i }).waitFor();
  await page.getByRole('button', { name: 'Cancel', exact: true }).click();

  await projectsRow.getByRole('link', { name: 'Projects' }).click();
  await page.waitForURL(`${BASE}/?folder=${projects.id}`);
  await page.locator('#files-empty').waitFor();
  await expectCrumbs(page, ['Files', 'Projects']);
  await page.getByRole('button', { name: 'New folder' }).click();
  await page.getByLabel('Name of the new folder').fill('Drafts');
  await page.keyboard.press('Enter');
  await page.locator('li.folder[data-name="Drafts"] a').click();
  const drafts = (await stat('/Projects/Drafts')).body;
  await page.waitForURL(`${BASE}/?folder=${drafts.id}`);
  await expectCrumbs(page, ['Files', 'Projects', 'Drafts']);
  await until('the folder as the title', async () => (await page.title()) === 'Drafts · pan', 5000);

  // Upload into the open folder, from the folder view itself. The picked
  // file's modification time goes along (init's `mtime`) and its row shows it.
  const note = join(tmp, 'note.txt');
  writeFileSync(note, 'note');
  utimesSync(note, 1_000_000_000, 1_000_000_000);
  await page.locator('#folder-files').setInputFiles(note);
  await page.locator('li.upload[data-name="note.txt"][data-state="done"]').waitFor();
  assert.match(await page.locator('li.upload[data-name="note.txt"]').textContent(), /into \/Projects\/Drafts/);
  await page.locator('li.file[data-name="note.txt"]').waitFor();
  const noted = (await stat('/Projects/Drafts/note.txt')).body;
  assert.equal(noted.kind, 'file');
  assert.equal(noted.mtime, 1_000_000_000);
  assert.equal(
    await page.locator('li.file[data-name="note.txt"] time.modified').getAttribute('datetime'),
    '2001-09-09T01:46:40.000Z',
  );

  // The upload view takes the open folder along.
  await page.getByRole('link', { name: 'Upload', exact: true }).click();
  await page.waitForURL(`${BASE}/file/upload?folder=${drafts.id}`);
  await page.locator('#upload-dest', { hasText: '/Projects/Drafts' }).waitFor();
  const plan = join(tmp, 'plan.txt');
  writeFileSync(plan, 'plan');
  await page.locator('#file-input').setInputFiles(plan);
  await page.locator('li.upload[data-name="plan.txt"][data-state="done"]').waitFor();
  assert.equal((await stat('/Projects/Drafts/plan.txt')).body.kind, 'file');
  await page.goBack();
  await page.waitForURL(`${BASE}/?folder=${drafts.id}`);
  await page.locator('li.file[data-name="plan.txt"]').waitFor();

  // Reload keeps the folder; back and forward walk the folders.
  await page.reload();
  await page.locator('li.file[data-name="note.txt"]').waitFor();
  await expectCrumbs(page, ['Files', 'Projects', 'Drafts']);
  await page.goBack();
  await page.waitForURL(`${BASE}/?folder=${projects.id}`);
  await page.locator('li.folder[data-name="Drafts"]').waitFor();
  await page.goForward();
  await page.waitForURL(`${BASE}/?folder=${drafts.id}`);
  await page.locator('li.file[data-name="note.txt"]').waitFor();

  // Each crumb opens its folder.
  await page.locator('#crumbs').getByRole('link', { name: 'Projects' }).click();
  await page.waitForURL(`${BASE}/?folder=${projects.id}`);
  await page.locator('li.folder[data-name="Drafts"]').waitFor();
  await page.locator('#crumbs').getByRole('link', { name: 'Files' }).click();
  await page.waitForURL(`${BASE}/`);
  await projectsRow.waitFor();
  await expectCrumbs(page, ['Files']);

  // Rename a folder.
  await page.getByRole('button', { name: 'Rename Projects' }).click();
  await page.getByLabel('New name for Projects').fill('Work');
  await page.getByRole('button', { name: 'Save' }).click();
  await page.locator('li.folder[data-name="Work"]').waitFor();
  assert.equal((await stat('/Work/Drafts/note.txt')).body.kind, 'file');
  await page.context().close();
});

test('files move by the dialog, by dragging onto a folder or a breadcrumb, and as a selection', async () => {
  await putFile('a.txt', 'a');
  await putFile('b.txt', 'bb');
  await putFile('c.txt', 'ccc');
  await putFile('d.txt', 'dddd');
  const page = await folkPage();
  await page.locator('li.file[data-name="a.txt"]').waitFor();

  // The dialog: browse into Work, then Drafts, move there.
  await page.getByRole('button', { name: 'Move a.txt' }).click();
  const dialog = page.getByRole('dialog');
  await dialog.getByRole('button', { name: 'Work' }).click();
  await dialog.locator('#move-path', { hasText: /^\/Work$/ }).waitFor();
  await dialog.getByRole('button', { name: 'Drafts' }).click();
  await dialog.locator('#move-path', { hasText: '/Work/Drafts' }).waitFor();
  await dialog.getByRole('button', { name: 'Up one level' }).click();
  await dialog.locator('#move-path', { hasText: /^\/Work$/ }).waitFor();
  await dialog.getByRole('button', { name: 'Drafts' }).click();
  await dialog.locator('#move-path', { hasText: '/Work/Drafts' }).waitFor();
  await dialog.getByRole('button', { name: 'Move here' }).click();
  await page.locator('li.file[data-name="a.txt"]').waitFor({ state: 'detached' });
  await page.locator('#files-note', { hasText: 'Moved “a.txt” to /Work/Drafts.' }).waitFor();
  assert.equal((await stat('/Work/Drafts/a.txt')).body.kind, 'file');

  // Drag and drop onto a folder row.
  await page.locator('li.file[data-name="b.txt"]').dragTo(page.locator('li.folder[data-name="Work"]'));
  await page.locator('li.file[data-name="b.txt"]').waitFor({ state: 'detached' });
  assert.equal((await stat('/Work/b.txt')).body.kind, 'file');

  // … and back onto the root's breadcrumb.
  await page.locator('li.folder[data-name="Work"] a').click();
  await page.locator('li.file[data-name="b.txt"]').waitFor();
  await page.locator('li.file[data-name="b.txt"]').dragTo(page.locator('#crumbs').getByRole('link', { name: 'Files' }));
  await page.locator('li.file[data-name="b.txt"]').waitFor({ state: 'detached' });
  assert.equal((await stat('/b.txt')).body.kind, 'file');

  // A selection of two, moved by the dialog.
  await page.locator('#crumbs').getByRole('link', { name: 'Files' }).click();
  await page.getByLabel('Select c.txt').check();
  await page.getByLabel('Select d.txt').check();
  await page.locator('#select-count', { hasText: '2 selected' }).waitFor();
  await page.getByRole('button', { name: 'Move…' }).click();
  await dialog.locator('#move-title', { hasText: 'Move 2 files' }).waitFor();
  await dialog.getByRole('button', { name: 'Work' }).click();
  await dialog.locator('#move-path', { hasText: /^\/Work$/ }).waitFor();
  await dialog.getByRole('button', { name: 'Move here' }).click();
  await page.locator('#files-note', { hasText: 'Moved 2 files to /Work.' }).waitFor();
  assert.equal(await page.locator('#selectbar').isHidden(), true);
  assert.equal((await stat('/Work/c.txt')).body.kind, 'file');
  assert.equal((await stat('/Work/d.txt')).body.kind, 'file');

  // A folder cannot be moved into itself: the dialog does not offer it.
  await page.getByRole('button', { name: 'Move Work' }).click();
  assert.equal(await dialog.getByRole('button', { name: 'Work' }).isDisabled(), true);
  await dialog.getByRole('button', { name: 'Cancel' }).click();

  // Keyboard: select-all, then Escape closes a dialog without doing anything.
  await page.getByLabel('Select all').focus();
  await page.keyboard.press('Space');
  await page.locator('#select-count', { hasText: '2 selected' }).waitFor();
  await page.getByRole('button', { name: 'Clear' }).click();
  await page.context().close();
});

test('a selection goes to the trash; the trash restores, deletes for good and empties', async () => {
  const page = await folkPage({ width: 1280, height: 800 });
  await page.locator('li.folder[data-name="Work"] a').click();
  await page.locator('li.file[data-name="c.txt"]').waitFor();
  await page.screenshot({ path: join(ARTIFACTS, 'folder-1280px.png'), fullPage: true });
  await page.setViewportSize({ width: 375, height: 812 });
  await page.screenshot({ path: join(ARTIFACTS, 'folder-375px.png'), fullPage: true });
  let overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `no sideways scrolling at 375 px in a folder (overflow ${overflow}px)`);
  await page.setViewportSize({ width: 1280, height: 800 });

  // Select all (Drafts, c.txt, d.txt), delete, confirm.
  await page.getByLabel('Select all').check();
  await page.locator('#select-count', { hasText: '3 selected' }).waitFor();
  await page.locator('#selectbar').getByRole('button', { name: 'Delete' }).click();
  assert.match(await page.locator('#confirm-text').textContent(), /1 folder and 2 files will be moved to the trash/);
  await page.getByRole('dialog').getByRole('button', { name: 'Move to trash' }).click();
  await page.locator('#files-empty').waitFor();
  assert.equal((await stat('/Work/Drafts')).status, 404);

  await page.getByRole('link', { name: 'Trash', exact: true }).click();
  await page.waitForURL(`${BASE}/?view=trash`);
  const rows = page.locator('#trash li.trashed');
  await rows.first().waitFor();
  assert.deepEqual((await rows.evaluateAll((els) => els.map((e) => e.dataset.name))).sort(), ['Drafts', 'c.txt', 'd.txt']);
  for (const t of await rows.locator('.restores-to').allTextContents()) assert.equal(t, '/Work');
  // Usage counts files, those in the trashed folder too (note, plan, a.txt, c.txt, d.txt).
  await page.locator('#trash-usage', { hasText: '5 files in the trash, 16 B' }).waitFor();
  const listed = await api(BASE, 'GET', '/trash/list', { token: folkToken });
  const purgeAt = listed.body.entries.find((t) => t.entry.name === 'c.txt').purge_at;
  assert.equal(await rows.and(page.locator('[data-name="c.txt"]')).locator('time.purge-at').getAttribute('datetime'), new Date(purgeAt * 1000).toISOString());
  await page.screenshot({ path: join(ARTIFACTS, 'trash-1280px.png'), fullPage: true });
  await page.setViewportSize({ width: 375, height: 812 });
  await page.screenshot({ path: join(ARTIFACTS, 'trash-375px.png'), fullPage: true });
  overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `no sideways scrolling at 375 px in the trash (overflow ${overflow}px)`);
  await page.setViewportSize({ width: 1280, height: 800 });

  // Restore the folder: it comes back with what was in it.
  await page.getByRole('button', { name: 'Restore Drafts' }).click();
  await page.locator('#trash-note', { hasText: 'Restored “Drafts” to /Work.' }).waitFor();
  assert.equal((await stat('/Work/Drafts/note.txt')).body.kind, 'file');
  assert.equal(await rows.count(), 2);

  // Delete one for good (cancel first).
  await page.getByRole('button', { name: 'Delete c.txt for good' }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Cancel' }).click();
  assert.equal(await rows.count(), 2);
  await page.getByRole('button', { name: 'Delete c.txt for good' }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Delete for good' }).click();
  await page.locator('#trash li.trashed[data-name="c.txt"]').waitFor({ state: 'detached' });
  await page.locator('#trash-usage', { hasText: '1 file in the trash, 4 B' }).waitFor();

  // Empty the trash.
  await page.getByRole('button', { name: 'Empty trash' }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Empty trash' }).click();
  await page.locator('#trash-none').waitFor();
  await page.locator('#trash-usage', { hasText: 'Nothing in the trash.' }).waitFor();
  const info = await api(BASE, 'GET', '/usr/info', { token: folkToken });
  assert.equal(info.body.trash_count, 0);
  assert.equal((await api(BASE, 'GET', '/trash/list', { token: folkToken })).body.entries.length, 0);
  await page.context().close();
});

/** Writes a small tree: tree/top.txt, tree/sub/inner.txt, tree/sub/deeper/deep.txt. */
function writeTree(root) {
  mkdirSync(join(root, 'tree', 'sub', 'deeper'), { recursive: true });
  writeFileSync(join(root, 'tree', 'top.txt'), 'top');
  writeFileSync(join(root, 'tree', 'sub', 'inner.txt'), 'inner');
  writeFileSync(join(root, 'tree', 'sub', 'deeper', 'deep.txt'), 'deep');
  return join(root, 'tree');
}

async function expectTree(base) {
  for (const [path, kind] of [['', 'folder'], ['/top.txt', 'file'], ['/sub', 'folder'], ['/sub/inner.txt', 'file'], ['/sub/deeper/deep.txt', 'file']]) {
    const res = await stat(`${base}${path}`);
    assert.equal(res.status, 200, `${base}${path}: ${JSON.stringify(res.body)}`);
    assert.equal(res.body.kind, kind, `${base}${path}`);
  }
}

test('a picked folder uploads its tree; a dropped one too, reusing the folders already there', async () => {
  const dir = writeTree(join(tmp, 'picked'));
  const page = await folkPage();
  await page.locator('li.folder[data-name="Work"] a').click();
  await page.locator('li.folder[data-name="Drafts"]').waitFor();

  // Picked with the folder input (webkitdirectory).
  await page.locator('#folder-dir').setInputFiles(dir);
  const done = page.locator('li.upload[data-state="done"], li.upload[data-state="instant"]');
  await until('the picked tree', async () => (await done.count()) === 3, 60_000);
  await expectTree('/Work/tree');
  await page.locator('li.folder[data-name="tree"]').waitFor();

  // Dropped on the list: a drop event whose items walk like Chromium's entries.
  const dropTree = (target) => page.evaluate(async (selector) => {
    const file = (name, text) => {
      const f = new File([text], name, { type: 'text/plain' });
      return { isFile: true, isDirectory: false, name, file: (ok) => ok(f) };
    };
    const dir = (name, children) => ({
      isFile: false,
      isDirectory: true,
      name,
      createReader() {
        // Two batches, then an empty one, as readEntries answers.
        const batches = [children.slice(0, 1), children.slice(1)];
        return { readEntries: (ok) => setTimeout(() => ok(batches.shift() || [])) };
      },
    });
    const tree = dir('tree', [
      file('top.txt', 'top'),
      dir('sub', [file('inner.txt', 'inner'), dir('deeper', [file('deep.txt', 'deep')])]),
      dir('empty', []),
      file('new.txt', 'new'),
    ]);
    const dataTransfer = {
      types: ['Files'],
      files: [],
      items: [{ kind: 'file', webkitGetAsEntry: () => tree }],
    };
    const event = new Event('drop', { bubbles: true, cancelable: true });
    Object.defineProperty(event, 'dataTransfer', { value: dataTransfer });
    document.querySelector(selector).dispatchEvent(event);
  }, target);

  const uploadsBefore = await page.locator('li.upload').count();
  await dropTree('#files');
  await until('the dropped tree', async () => (await done.count()) === uploadsBefore + 4, 60_000);
  await expectTree('/Work/tree');
  assert.equal((await stat('/Work/tree/new.txt')).body.kind, 'file');
  assert.equal((await stat('/Work/tree/empty')).body.kind, 'folder');
  // Reused, not numbered: no "tree (1)", no second copy of a file.
  const work = await api(BASE, 'GET', `/folder/list?path=${encodeURIComponent('/Work')}`, { token: folkToken });
  assert.deepEqual(work.body.entries.map((e) => e.name).sort(), ['Drafts', 'tree']);
  const tree = await api(BASE, 'GET', `/folder/list?path=${encodeURIComponent('/Work/tree')}`, { token: folkToken });
  assert.deepEqual(tree.body.entries.map((e) => e.name).sort(), ['empty', 'new.txt', 'sub', 'top.txt']);

  // Dropped on a folder row: the tree goes inside that folder.
  await dropTree('li.folder[data-name="Drafts"]');
  await until('the tree dropped on Drafts', async () => (await done.count()) === uploadsBefore + 8, 60_000);
  await expectTree('/Work/Drafts/tree');
  await page.context().close();
});

test('a taken name offers replace; History lists the old content, downloads, pins, restores and deletes it', async () => {
  const user = `vera-${Date.now().toString(36)}`;
  assert.equal((await api(BASE, 'POST', '/usr/signup', { json: { username: user, password: PASSWORD } })).status, 201);
  const first = randomBytes(300 * 1024);
  const second = randomBytes(200 * 1024);
  // Two local files of the same name, in two folders.
  const put = (dir, data) => {
    mkdirSync(join(tmp, dir), { recursive: true });
    writeFileSync(join(tmp, dir, 'report.bin'), data);
    return join(tmp, dir, 'report.bin');
  };
  const firstPath = put('v1', first);
  const secondPath = put('v2', second);
  const page = await newPage();
  await signInThroughForm(page, BASE, user);
  const token = await tokenOf(page);
  const inits = [];
  page.on('request', (r) => r.url().endsWith('/file/mupload/init') && inits.push(r.postDataJSON().on_conflict));
  await page.goto(`${BASE}/file/upload`);
  const uploads = page.locator('li.upload[data-name="report.bin"]');
  await page.locator('#file-input').setInputFiles(firstPath);
  await uploads.and(page.locator('[data-state="done"]')).waitFor();

  // The same name again: init refuses, and the page asks.
  await page.locator('#file-input').setInputFiles(secondPath);
  const asking = uploads.and(page.locator('[data-state="conflict"]'));
  await asking.waitFor();
  assert.match(await asking.locator('.status').textContent(), /“report\.bin” is already in \/\. Replace it .* or keep both/);
  assert.equal(await asking.getByRole('button', { name: 'Keep both files named report.bin' }).isVisible(), true);
  await page.screenshot({ path: join(ARTIFACTS, 'upload-name-taken.png'), fullPage: true });
  await asking.getByRole('button', { name: 'Replace the file report.bin' }).click();
  await until('the replacing upload', async () => (await uploads.and(page.locator('[data-state="done"]')).count()) === 2);
  assert.deepEqual(inits, ['refuse', 'refuse', 'replace']);
  const root = await api(BASE, 'GET', '/folder/list?path=/', { token });
  assert.deepEqual(root.body.entries.map((e) => [e.name, e.size]), [['report.bin', second.length]]);
  const id = root.body.entries[0].id;
  const sha256 = (buf) => createHash('sha256').update(buf).digest('hex');
  const versions = async () => (await api(BASE, 'GET', `/file/versions?id=${id}`, { token })).body.versions;
  assert.deepEqual((await versions()).map((v) => v.sha256), [sha256(first)]);

  // History: the first content, by this user.
  await page.getByRole('link', { name: 'Files', exact: true }).click();
  await page.getByRole('button', { name: 'History of report.bin' }).click();
  const dialog = page.locator('#history');
  await dialog.waitFor();
  assert.equal(await page.locator('#history-title').textContent(), 'History of “report.bin”');
  const rows = dialog.locator('li.version');
  await rows.first().waitFor();
  assert.equal(await rows.count(), 1);
  const row = rows.first();
  assert.match(await row.textContent(), new RegExp(`Replaced .*300\\.0 KiB · by ${user}`));
  await page.screenshot({ path: join(ARTIFACTS, 'history.png'), fullPage: true });

  // Its download is the first content, byte for byte (a blob: no token in a URL).
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    row.getByRole('button', { name: /^Download the version replaced / }).click(),
  ]);
  assert.equal(download.suggestedFilename(), 'report.bin');
  assert.match(download.url(), /^blob:/);
  await download.saveAs(join(tmp, 'version.bin'));
  assert.ok(readFileSync(join(tmp, 'version.bin')).equals(first), 'the version downloads byte-exact');

  // Pin with a label typed in the row.
  await row.getByRole('button', { name: /^Pin the version/ }).click();
  await row.getByLabel('Label (optional)').fill('before the edit');
  await row.getByRole('button', { name: 'Pin', exact: true }).click();
  await dialog.locator('li.version[data-pinned="true"]', { hasText: 'before the edit' }).waitFor();
  assert.deepEqual((await versions()).map((v) => [v.pinned, v.label]), [[true, 'before the edit']]);

  // Restore: the first content is the file's again; the second is now the version.
  await dialog.locator('li.version').getByRole('button', { name: /^Restore the version/ }).click();
  await page.locator('#history-note', { hasText: 'Restored' }).waitFor();
  await dialog.locator('li.version', { hasText: '200.0 KiB' }).waitFor();
  assert.equal(await rows.count(), 1);
  assert.deepEqual((await versions()).map((v) => v.sha256), [sha256(second)]);
  await dialog.getByRole('button', { name: 'Close' }).click();
  await page.locator('li.file[data-name="report.bin"]', { hasText: '300.0 KiB' }).waitFor();
  const [restored] = await Promise.all([
    page.waitForEvent('download'),
    page.getByRole('button', { name: 'Download report.bin' }).click(),
  ]);
  await restored.saveAs(join(tmp, 'restored.bin'));
  assert.ok(readFileSync(join(tmp, 'restored.bin')).equals(first), 'the restored file downloads byte-exact');

  // Delete the remaining version, after the confirmation.
  await page.getByRole('button', { name: 'History of report.bin' }).click();
  await rows.first().getByRole('button', { name: /^Delete the version/ }).click();
  await page.locator('#confirm-title', { hasText: 'Delete version?' }).waitFor();
  await page.locator('#confirm-ok').click();
  await page.locator('#history-none').waitFor();
  assert.deepEqual(await versions(), []);
  await dialog.getByRole('button', { name: 'Close' }).click();

  // The name taken again, kept both: the new one is numbered, as before.
  await page.goto(`${BASE}/file/upload`);
  await page.locator('#file-input').setInputFiles(secondPath);
  await asking.getByRole('button', { name: 'Keep both files named report.bin' }).click();
  await uploads.and(page.locator('[data-state="done"]')).waitFor();
  const both = await api(BASE, 'GET', '/folder/list?path=/', { token });
  assert.deepEqual(both.body.entries.map((e) => e.name).sort(), ['report (1).bin', 'report.bin']);
  await page.context().close();
});

test('an oversized file shows the API message', async () => {
  const user = `carol-${Date.now().toString(36)}`;
  assert.equal((await api(SMALL, 'POST', '/usr/signup', { json: { username: user, password: PASSWORD } })).status, 201);
  const data = randomBytes(2 * MiB);
  const file = join(tmp, 'too-big.bin');
  writeFileSync(file, data);
  const signin = await api(SMALL, 'POST', '/usr/signin', { json: { username: user, password: PASSWORD } });
  const expected = await api(SMALL, 'POST', '/file/mupload/init', {
    token: signin.body.token,
    json: { filename: 'too-big.bin', filehash: sha1(data), filesize: data.length },
  });
  assert.equal(expected.status, 413);

  const page = await newPage({ width: 360, height: 740 });
  await signInThroughForm(page, SMALL, user);
  await page.goto(`${SMALL}/file/upload`);
  await page.locator('#file-input').setInputFiles(file);
  const item = page.locator('li.upload[data-name="too-big.bin"]');
  await item.and(page.locator('[data-state="error"]')).waitFor();
  assert.equal(await item.locator('.status').textContent(), `Stopped: ${expected.body.message}`);
  await page.screenshot({ path: join(ARTIFACTS, 'upload-too-big-360px.png') });
  await page.context().close();
});

test('the page reported no errors and no CSP violations', () => {
  assert.deepEqual(pageProblems, []);
});
