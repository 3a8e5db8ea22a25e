// End-to-end tests of pan's web page in Debian's headless Chromium.
//
// run.sh starts two api processes and sets PAN_URL (1 MiB chunks) and
// PAN_SMALL_URL (1 MiB file-size limit). The tests run in order and share the
// first user's account: sign up → upload and resume → instant → list.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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
  await page.locator('#file-input').setInputFiles(copy);
  const item = page.locator('li.upload[data-name="big-copy.bin"]');
  await item.and(page.locator('[data-state="instant"]')).waitFor({ timeout: 30_000 });
  assert.match(await item.locator('.status').textContent(), /already stored/);
  assert.deepEqual(uppart, []);
  const answers = await Promise.all(proofs);
  assert.equal(answers.length, 1, 'one answer to the challenge');
  assert.equal(answers[0].status, 'instant');
  await page.goto(`${BASE}/`);
  await page.locator('li.file[data-name="big-copy.bin"]').waitFor();
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

test('the list pages, renames and deletes (with a confirmation)', async () => {
  const page = await newPage();
  await signInThroughForm(page, BASE, USER);
  const token = await tokenOf(page);
  // 21 small files through the API, so there are two pages.
  for (let i = 0; i < 21; i++) {
    const form = new FormData();
    form.append('file', new Blob([`small file ${i} ${USER}`]), `small-${String(i).padStart(2, '0')}.txt`);
    const res = await api(BASE, 'POST', '/file/upload', { token, body: form });
    assert.equal(res.status, 201, JSON.stringify(res.body));
  }
  await page.reload();
  await page.locator('#page-info', { hasText: '1–20 of 22' }).waitFor();
  // Newest first: the last small file leads, big.bin is on page two.
  assert.equal(await page.locator('li.file').first().getAttribute('data-name'), 'small-20.txt');
  await page.screenshot({ path: join(ARTIFACTS, 'files.png'), fullPage: true });
  await page.getByRole('button', { name: 'Next' }).click();
  await page.locator('#page-info', { hasText: '21–22 of 22' }).waitFor();
  await page.locator('li.file[data-name="big.bin"]').waitFor();

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

  // Rename.
  await page.getByRole('button', { name: 'Rename big.bin' }).click();
  await page.getByLabel('New name for big.bin').fill('renamed.bin');
  await page.getByRole('button', { name: 'Save' }).click();
  await page.locator('li.file[data-name="renamed.bin"]').waitFor();
  const listed = await api(BASE, 'GET', '/file/query?limit=100', { token });
  assert.ok(listed.body.files.some((f) => f.filename === 'renamed.bin' && f.filehash === bigSha1));

  // Delete: cancel first, then confirm.
  await page.getByRole('button', { name: 'Delete renamed.bin' }).click();
  await page.getByRole('dialog').waitFor();
  await page.getByRole('button', { name: 'Cancel' }).click();
  assert.equal(await page.locator('li.file[data-name="renamed.bin"]').count(), 1);
  await page.getByRole('button', { name: 'Delete renamed.bin' }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Delete' }).click();
  await page.locator('li.file[data-name="renamed.bin"]').waitFor({ state: 'detached' });
  await page.locator('#profile-count', { hasText: '21' }).waitFor();
  await page.locator('#page-info', { hasText: '21–21 of 21' }).waitFor();

  // A phone-sized screen.
  await page.setViewportSize({ width: 360, height: 740 });
  await page.screenshot({ path: join(ARTIFACTS, 'files-360px.png'), fullPage: false });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `no sideways scrolling at 360 px (overflow ${overflow}px)`);
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
