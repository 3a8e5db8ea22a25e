// End-to-end tests of share links, search and previews in Debian's headless
// Chromium (run by run.sh with web.test.js; PAN_URL is the api with 1 MiB chunks).
//
// One account of their own (OWNER) with /Trips (photo.png, clip.webm,
// notes.txt, bundle.zip, Day 1/a.txt) and /Many (55 files to page through in
// search). The public share page is opened in separate browser contexts
// that never sign in.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const BASE = process.env.PAN_URL;
const ARTIFACTS = process.env.PAN_ARTIFACTS || join(import.meta.dirname, 'artifacts');
assert.ok(BASE, 'PAN_URL must be set (run tests/browser/run.sh)');

const PASSWORD = 'correct horse battery';
const OWNER = `sam-${Date.now().toString(36)}`;
const LINK_PASSWORD = 'open sesame 42';

let browser;
let tmp;
let token;
/** Problems the pages reported: uncaught errors and CSP refusals. */
const pageProblems = [];
/** Bytes of the generated fixtures, by name. */
const fixtures = {};
/** Ids of the folders made in `before`. */
const ids = {};

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function api(method, path, { json, body, auth = true } = {}) {
  const headers = { accept: 'application/json' };
  if (auth) headers.authorization = `Bearer ${token}`;
  if (json !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(BASE + path, { method, headers, body: json !== undefined ? JSON.stringify(json) : body });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text && res.headers.get('content-type')?.includes('json') ? JSON.parse(text) : text };
}

async function putFile(name, data, folder) {
  const form = new FormData();
  form.append('file', new Blob([data]), name);
  if (folder) form.append('folder', folder);
  const res = await api('POST', '/file/upload', { body: form });
  assert.equal(res.status, 201, JSON.stringify(res.body));
  return res.body;
}

async function newPage({ width = 1280, height = 800, permissions = [] } = {}) {
  const context = await browser.newContext({ viewport: { width, height }, acceptDownloads: true, permissions });
  const page = await context.newPage();
  page.on('pageerror', (e) => pageProblems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && /Content Security Policy|Refused to/i.test(m.text())) pageProblems.push(m.text());
  });
  return page;
}

/** The owner, signed in through the form, in the folder view. */
async function ownerPage(opts) {
  const page = await newPage({ permissions: ['clipboard-read', 'clipboard-write'], ...opts });
  await page.goto(`${BASE}/usr/signin`);
  await page.locator('#signin-username').fill(OWNER);
  await page.locator('#signin-password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL(`${BASE}/`);
  await page.locator('#who-name', { hasText: OWNER }).waitFor();
  return page;
}

/** A page without an account, as someone the link was sent to. */
const strangerPage = (opts) => newPage(opts);

/** A PNG (drawn on a canvas) and a 3-second WebM (a canvas recorded by MediaRecorder), made in the page. */
async function makeMedia(page) {
  const out = await page.evaluate(async () => {
    const canvas = document.createElement('canvas');
    canvas.width = 160;
    canvas.height = 120;
    const ctx = canvas.getContext('2d');
    const b64 = (buf) => {
      let s = '';
      for (const x of new Uint8Array(buf)) s += String.fromCharCode(x);
      return btoa(s);
    };
    ctx.fillStyle = '#2457c5';
    ctx.fillRect(0, 0, 160, 120);
    ctx.fillStyle = '#fff';
    ctx.fillRect(40, 30, 80, 60);
    const png = await new Promise((r) => canvas.toBlob(r, 'image/png'));

    const rec = new MediaRecorder(canvas.captureStream(25), { mimeType: 'video/webm;codecs=vp8', videoBitsPerSecond: 300_000 });
    const chunks = [];
    rec.ondataavailable = (e) => chunks.push(e.data);
    rec.start(200);
    let frame = 0;
    const t0 = performance.now();
    await new Promise((done) => {
      const id = setInterval(() => {
        ctx.fillStyle = `hsl(${frame * 10}, 80%, 50%)`;
        ctx.fillRect(0, 0, 160, 120);
        ctx.fillStyle = '#000';
        ctx.font = '40px sans-serif';
        ctx.fillText(String(frame), 20, 70);
        frame += 1;
        if (performance.now() - t0 > 3000) {
          clearInterval(id);
          done();
        }
      }, 40);
    });
    rec.stop();
    await new Promise((r) => { rec.onstop = r; });
    return { png: b64(await png.arrayBuffer()), webm: b64(await new Blob(chunks).arrayBuffer()) };
  });
  return { png: Buffer.from(out.png, 'base64'), webm: Buffer.from(out.webm, 'base64') };
}

before(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'pan-share-'));
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  });
  assert.equal((await api('POST', '/usr/signup', { json: { username: OWNER, password: PASSWORD }, auth: false })).status, 201);
  token = (await api('POST', '/usr/signin', { json: { username: OWNER, password: PASSWORD }, auth: false })).body.token;

  // The media are made by Chromium itself, on a page of this origin.
  const page = await newPage();
  await page.goto(`${BASE}/usr/signin`);
  const media = await makeMedia(page);
  await page.context().close();
  assert.ok(media.png.subarray(1, 4).toString() === 'PNG', 'a PNG');
  assert.ok(media.webm.length > 1000, `a WebM of ${media.webm.length} bytes`);

  const folder = async (name, parent) => {
    const res = await api('POST', '/folder/create', { json: { name, parent } });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    return res.body.id;
  };
  ids.trips = await folder('Trips');
  ids.day1 = await folder('Day 1', ids.trips);
  ids.many = await folder('Many');
  Object.assign(fixtures, {
    'photo.png': media.png,
    'clip.webm': media.webm,
    'notes.txt': Buffer.from('Packing list:\n- boots\n- map\n'),
    'bundle.zip': Buffer.from('PK\u0005\u0006'.padEnd(22, '\0')),
    'a.txt': Buffer.from('day one'),
  });
  for (const name of ['photo.png', 'clip.webm', 'notes.txt', 'bundle.zip']) ids[name] = (await putFile(name, fixtures[name], ids.trips)).id;
  ids['a.txt'] = (await putFile('a.txt', fixtures['a.txt'], ids.day1)).id;
  for (let i = 0; i < 55; i++) await putFile(`match-${String(i).padStart(2, '0')}.txt`, `match ${i}`, ids.many);
});

after(async () => {
  await browser?.close();
  rmSync(tmp, { recursive: true, force: true });
});

/** Fills and submits the share dialog; answers the link's URL. */
async function makeLink(page, { password, expiry, limit, shots } = {}) {
  const dialog = page.locator('#share');
  await dialog.waitFor();
  if (password) await dialog.getByLabel('Password').fill(password);
  if (expiry) await dialog.getByLabel('Expires').selectOption(expiry);
  if (limit) await dialog.getByLabel('Download limit').fill(String(limit));
  if (shots) await shot(page, shots, 'share-dialog');
  await dialog.getByRole('button', { name: 'Create link' }).click();
  await dialog.locator('#share-result').waitFor();
  const url = await dialog.locator('#share-url').inputValue();
  assert.match(url, new RegExp(`^${BASE}/s/[A-Za-z0-9_-]{22}$`));
  if (shots) await shot(page, shots, 'share-dialog-link');
  return url;
}

/** Screenshots at 1280 px and 375 px wide (and no sideways scrolling at 375). */
async function shot(page, enabled, name) {
  if (!enabled) return;
  const size = page.viewportSize();
  await page.setViewportSize({ width: 1280, height: 800 });
  await page.screenshot({ path: join(ARTIFACTS, `${name}-1280px.png`), fullPage: true });
  await page.setViewportSize({ width: 375, height: 812 });
  await page.screenshot({ path: join(ARTIFACTS, `${name}-375px.png`), fullPage: true });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `no sideways scrolling at 375 px on ${name} (overflow ${overflow}px)`);
  await page.setViewportSize(size);
}

async function saved(download) {
  const path = join(tmp, `${Date.now()}-${download.suggestedFilename()}`);
  await download.saveAs(path);
  return path;
}

let fileLink;
let folderLink;

test('a password link to a file in a folder: a stranger without an account gets the error on a wrong password, then sees and downloads it', async () => {
  const owner = await ownerPage();
  await owner.locator('li.folder[data-name="Trips"] a').click();
  await owner.locator('li.file[data-name="photo.png"]').waitFor();

  // "Share…" is offered for a selection of one only.
  await owner.getByLabel('Select notes.txt').check();
  assert.equal(await owner.getByRole('button', { name: 'Share…' }).isVisible(), true);
  await owner.getByLabel('Select photo.png').check();
  assert.equal(await owner.getByRole('button', { name: 'Share…' }).isVisible(), false);
  await owner.getByLabel('Select notes.txt').uncheck();
  await owner.getByRole('button', { name: 'Share…' }).click();
  await owner.locator('#share-title', { hasText: 'Share “photo.png”' }).waitFor();
  // A short password is refused in the page, before the server sees it.
  await owner.locator('#share').getByLabel('Password').fill('short');
  await owner.locator('#share').getByRole('button', { name: 'Create link' }).click();
  await owner.locator('#share-error', { hasText: 'at least 8 characters' }).waitFor();
  fileLink = await makeLink(owner, { password: LINK_PASSWORD, expiry: '7', shots: true });
  assert.match(await owner.locator('#share-summary').textContent(), /^Password · expires .+ · 0 of|^Password · expires .+ · 0 downloads$/);
  await owner.locator('#share').getByRole('button', { name: 'Copy', exact: true }).click();
  await owner.locator('#share-copied', { hasText: /Copied|Ctrl\+C/ }).waitFor();
  if ((await owner.locator('#share-copied').textContent()) === 'Copied.') {
    assert.equal(await owner.evaluate(() => navigator.clipboard.readText()), fileLink);
  }
  await owner.locator('#share').getByRole('button', { name: 'Done' }).click();
  const listed = (await api('GET', '/share/list')).body.shares;
  const made = listed.find((s) => s.url === fileLink);
  assert.equal(made.target, ids['photo.png']);
  assert.equal(made.has_password, true);
  assert.ok(Math.abs(made.expires_at - (Date.now() / 1000 + 7 * 86400)) < 120, 'expires in 7 days');
  await owner.context().close();

  // A stranger: a fresh context, never signed in.
  const page = await strangerPage();
  await page.goto(fileLink);
  await page.locator('#public-password').waitFor();
  assert.equal(await page.locator('#nav').isVisible(), false);
  assert.equal(await page.locator('#who').isVisible(), false);
  assert.equal(await page.getByRole('link', { name: /sign in|sign up/i }).filter({ visible: true }).count(), 0);
  const wrong = await api('POST', `/public/share/unlock?link=${fileLink.split('/s/')[1]}`, { json: { password: 'not the password' }, auth: false });
  assert.equal(wrong.status, 403);
  await page.locator('#public-password-input').fill('still not it');
  await page.getByRole('button', { name: 'Open', exact: true }).click();
  await page.locator('#public-error', { hasText: wrong.body.message }).waitFor();
  await shot(page, true, 'public-password');

  await page.locator('#public-password-input').fill(LINK_PASSWORD);
  await page.getByRole('button', { name: 'Open', exact: true }).click();
  await page.locator('#public-title', { hasText: 'photo.png' }).waitFor();
  assert.match(await page.locator('#public-meta').textContent(), /^[\d.]+ (B|KiB) · Link works until .+$/);
  const img = page.locator('#public-body img.viewer');
  await page.waitForFunction(() => document.querySelector('#public-body img.viewer')?.naturalWidth > 0);
  assert.equal(await img.evaluate((i) => i.naturalWidth), 160);
  await shot(page, true, 'public-file');
  const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('link', { name: 'Download' }).click()]);
  assert.equal(download.suggestedFilename(), 'photo.png');
  assert.deepEqual(readFileSync(await saved(download)), fixtures['photo.png']);
  // A reload keeps the access (sessionStorage): no second password.
  await page.reload();
  await page.locator('#public-title', { hasText: 'photo.png' }).waitFor();
  await page.context().close();
});

test('a folder link browses folders first, inside the share only, downloads a file and the whole folder as a zip', async () => {
  const owner = await ownerPage();
  await owner.getByRole('button', { name: 'Share Trips' }).click();
  folderLink = await makeLink(owner, { expiry: 'never' });
  assert.equal(await owner.locator('#share-summary').textContent(), 'No password · never expires · 0 downloads');
  await owner.context().close();

  const page = await strangerPage();
  await page.goto(folderLink);
  await page.locator('#public-title', { hasText: 'Trips' }).waitFor();
  await page.locator('#public-list li').first().waitFor();
  assert.deepEqual(await page.locator('#public-list li').evaluateAll((els) => els.map((e) => e.dataset.name)),
    ['Day 1', 'bundle.zip', 'clip.webm', 'notes.txt', 'photo.png']);
  assert.match(await page.locator('#public-meta').textContent(), /Link does not expire/);
  await shot(page, true, 'public-folder');

  // Into a sub-folder and back by the breadcrumbs; the path is in the URL.
  await page.locator('#public-list').getByRole('link', { name: 'Day 1' }).click();
  await page.waitForURL(`${folderLink}?path=%2FDay+1`);
  await page.locator('#public-list li[data-name="a.txt"]').waitFor();
  assert.deepEqual(await page.locator('#public-crumbs li').allTextContents(), ['Trips', 'Day 1']);
  const [one] = await Promise.all([page.waitForEvent('download'), page.getByRole('link', { name: 'Download a.txt' }).click()]);
  assert.equal(readFileSync(await saved(one), 'utf8'), 'day one');
  await page.goBack();
  await page.locator('#public-list li[data-name="photo.png"]').waitFor();
  await page.locator('#public-list').getByRole('link', { name: 'Day 1' }).click();
  await page.locator('#public-crumbs').getByRole('link', { name: 'Trips' }).click();
  await page.waitForURL(folderLink);
  await page.locator('#public-list li[data-name="photo.png"]').waitFor();

  // A text file previews in place.
  await page.getByRole('button', { name: 'Preview notes.txt' }).click();
  await page.locator('#preview pre.viewer', { hasText: 'Packing list:' }).waitFor();
  await page.locator('#preview').getByRole('button', { name: 'Close' }).click();

  // The whole folder as one zip.
  const [zip] = await Promise.all([page.waitForEvent('download'), page.getByRole('link', { name: 'Download all as zip' }).click()]);
  assert.equal(zip.suggestedFilename(), 'Trips.zip');
  const bytes = readFileSync(await saved(zip));
  assert.equal(bytes.subarray(0, 2).toString(), 'PK');
  const content = Object.entries(fixtures).reduce((n, [, b]) => n + b.length, 0);
  assert.ok(bytes.length > content, `the zip (${bytes.length} B) holds the ${content} B of its files`);
  // The zip names its files by their paths in the share.
  for (const name of ['Day 1/a.txt', 'photo.png', 'clip.webm']) assert.ok(bytes.includes(Buffer.from(name)), name);
  await page.context().close();
});

test('search finds files and folders with their paths, pages, opens a result\'s folder, and clearing shows the folder again', async () => {
  const page = await ownerPage();
  await page.locator('li.folder[data-name="Trips"]').waitFor();
  await page.getByRole('searchbox').fill('NOTES');
  await page.getByRole('searchbox').press('Enter');
  const result = page.locator('#search-results li[data-name="notes.txt"]');
  await result.waitFor();
  assert.equal(await result.getAttribute('data-path'), '/Trips/notes.txt');
  assert.equal(await page.locator('#folder-body').isHidden(), true);
  await page.locator('#search-status', { hasText: '1 result for “NOTES”' }).waitFor();

  // Opens its folder.
  await result.getByRole('link', { name: 'Open the folder /Trips' }).click();
  await page.waitForURL(`${BASE}/?folder=${ids.trips}`);
  await page.locator('#files li.file[data-name="notes.txt"]').waitFor();
  assert.equal(await page.locator('#search-view').isHidden(), true);
  assert.equal(await page.getByRole('searchbox').inputValue(), '');

  // 55 matches: a page of 50, then the rest.
  await page.getByRole('searchbox').fill('match-');
  await page.getByRole('button', { name: 'Search', exact: true }).click();
  await page.locator('#search-status', { hasText: '50+ results' }).waitFor();
  await page.getByRole('button', { name: 'More results' }).click();
  await page.locator('#search-status', { hasText: '55 results' }).waitFor();
  assert.equal(await page.locator('#search-results li').count(), 55);
  assert.equal(await page.getByRole('button', { name: 'More results' }).isHidden(), true);
  // A folder result opens the folder.
  await page.getByRole('searchbox').fill('day');
  await page.getByRole('searchbox').press('Enter');
  await page.locator('#search-results li.folder[data-name="Day 1"]').getByRole('link', { name: 'Day 1' }).click();
  await page.waitForURL(`${BASE}/?folder=${ids.day1}`);
  await page.locator('#files li.file[data-name="a.txt"]').waitFor();
  // Nothing found; then clearing shows the folder again.
  await page.getByRole('searchbox').fill('no-such-name');
  await page.getByRole('searchbox').press('Enter');
  await page.locator('#search-status', { hasText: 'Nothing is named like “no-such-name”.' }).waitFor();
  await page.getByRole('button', { name: 'Clear search' }).click();
  await page.locator('#files li.file[data-name="a.txt"]').waitFor();
  assert.equal(await page.locator('#folder-body').isVisible(), true);
  await page.context().close();
});

test('previews in the folder view: an image loads, a video seeks with Range (206), text shows; other files get an icon by type', async () => {
  const page = await ownerPage();
  const signed = [];
  page.on('response', (r) => {
    if (r.url().includes('/file/signed?')) signed.push({ url: r.url(), status: r.status(), range: r.headers()['content-range'] });
  });
  await page.locator('li.folder[data-name="Trips"] a').click();
  await page.locator('li.file[data-name="photo.png"]').waitFor();
  const iconOf = (name) => page.locator(`#files li[data-name="${name}"] .icon`).getAttribute('class');
  assert.equal(await iconOf('photo.png'), 'icon file type-image');
  assert.equal(await iconOf('clip.webm'), 'icon file type-video');
  assert.equal(await iconOf('notes.txt'), 'icon file type-text');
  assert.equal(await iconOf('bundle.zip'), 'icon file type-archive');
  assert.equal(await iconOf('Day 1'), 'icon folder');
  // Only what a browser can show is a preview button.
  assert.equal(await page.getByRole('button', { name: 'Preview bundle.zip' }).count(), 0);

  await page.getByRole('button', { name: 'Preview photo.png' }).click();
  const dialog = page.locator('#preview');
  await page.waitForFunction(() => document.querySelector('#preview img.viewer')?.complete && document.querySelector('#preview img.viewer').naturalWidth > 0);
  assert.equal(await dialog.locator('img.viewer').evaluate((i) => i.naturalWidth), 160);
  assert.match(await dialog.locator('img.viewer').getAttribute('src'), new RegExp(`^${BASE}/file/signed\\?.*inline=true`));
  await shot(page, true, 'preview-image');
  await dialog.getByRole('button', { name: 'Close' }).click();
  assert.equal(await dialog.isVisible(), false);

  await page.getByRole('button', { name: 'Preview clip.webm' }).click();
  const video = dialog.locator('video.viewer');
  await video.waitFor();
  await page.waitForFunction(() => document.querySelector('#preview video.viewer').readyState >= 1);
  const seeked = await video.evaluate((v) => new Promise((resolve, reject) => {
    v.addEventListener('seeked', () => resolve(v.currentTime), { once: true });
    v.addEventListener('error', () => reject(new Error(v.error?.message)), { once: true });
    v.currentTime = 2;
  }));
  assert.ok(Math.abs(seeked - 2) < 0.5, `seeked to ${seeked}`);
  const partial = signed.filter((r) => r.status === 206);
  assert.ok(partial.length >= 1, `a 206 for the video: ${JSON.stringify(signed)}`);
  assert.match(partial[0].range, new RegExp(`^bytes \\d+-\\d+/${fixtures['clip.webm'].length}$`));
  await dialog.getByRole('button', { name: 'Close' }).click();
  // Closing stops it.
  await dialog.locator('video').waitFor({ state: 'detached' });

  await page.getByRole('button', { name: 'Preview notes.txt' }).click();
  await dialog.locator('pre.viewer', { hasText: '- boots' }).waitFor();
  // Download from the preview.
  const [download] = await Promise.all([page.waitForEvent('download'), dialog.getByRole('button', { name: 'Download notes.txt' }).click()]);
  assert.equal(readFileSync(await saved(download), 'utf8'), fixtures['notes.txt'].toString());
  await page.keyboard.press('Escape');
  assert.equal(await dialog.isVisible(), false);
  await page.context().close();
});

test('the shared links view lists links with their options and counts; revoking (after a confirmation) makes the link say "not found"', async () => {
  const page = await ownerPage();
  await page.getByRole('link', { name: 'Shared links' }).click();
  await page.waitForURL(`${BASE}/?view=shares`);
  const rows = page.locator('#shares li');
  await rows.first().waitFor();
  const shares = (await api('GET', '/share/list')).body.shares;
  assert.equal(await rows.count(), shares.length);
  const photo = shares.find((s) => s.url === fileLink);
  assert.ok(photo.downloads >= 1, 'the stranger\'s download counted');
  const row = page.locator(`#shares li[data-path="/Trips/photo.png"]`);
  assert.equal(await row.locator('.share-url').textContent(), fileLink);
  assert.match(await row.locator('.share-options').textContent(), new RegExp(`^Password · expires .+ · ${photo.downloads} downloads?$`));
  const trips = shares.find((s) => s.url === folderLink);
  assert.ok(trips.downloads >= 2, 'a file and the zip counted');
  assert.equal(await page.locator('#shares li[data-path="/Trips"] .share-options').textContent(), `No password · never expires · ${trips.downloads} downloads`);
  await shot(page, true, 'shared-links');

  // Cancel first, then revoke.
  await row.getByRole('button', { name: 'Revoke the link to /Trips/photo.png' }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Cancel' }).click();
  assert.equal(await row.count(), 1);
  await row.getByRole('button', { name: 'Revoke the link to /Trips/photo.png' }).click();
  assert.match(await page.locator('#confirm-text').textContent(), /stop working at once/);
  await page.getByRole('dialog').getByRole('button', { name: 'Revoke' }).click();
  await row.waitFor({ state: 'detached' });
  await page.locator('#shares-note', { hasText: 'The link to /Trips/photo.png is revoked.' }).waitFor();
  await page.context().close();

  const stranger = await strangerPage();
  await stranger.goto(fileLink);
  await stranger.locator('#public-title', { hasText: 'Link not found' }).waitFor();
  assert.match(await stranger.locator('#public-body').textContent(), /not found/);
  await stranger.context().close();
});

test('expired and used-up links say so', async () => {
  const expiring = await api('POST', '/share/create', { json: { id: ids['notes.txt'], expires_in: 1 } });
  const once = await api('POST', '/share/create', { json: { id: ids['notes.txt'], max_downloads: 1 } });
  assert.equal(once.status, 201);
  const page = await strangerPage({ width: 375, height: 812 });
  // A link with a download limit shows the file, but previews only when asked (a preview counts).
  await page.goto(once.body.url);
  await page.locator('#public-title', { hasText: 'notes.txt' }).waitFor();
  assert.match(await page.locator('#public-meta').textContent(), /1 download left/);
  await page.getByRole('button', { name: 'Show a preview (counts as a download)' }).waitFor();
  const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('link', { name: 'Download' }).click()]);
  await saved(download);
  await page.reload();
  await page.locator('#public-title', { hasText: 'This link is used up' }).waitFor();

  await sleep(Math.max(0, (expiring.body.expires_at + 1) * 1000 - Date.now()));
  await page.goto(expiring.body.url);
  await page.locator('#public-title', { hasText: 'This link has expired' }).waitFor();
  await page.context().close();
});

test('too many wrong passwords: the page shows the server\'s 429 message', async () => {
  const made = await api('POST', '/share/create', { json: { id: ids['notes.txt'], password: LINK_PASSWORD } });
  const link = made.body.link;
  // Spend this address's attempts (PAN_SHARE_PASSWORD_RATE, 10 a minute) from node.
  let last;
  for (let i = 0; i < 12; i++) {
    last = await api('POST', `/public/share/unlock?link=${link}`, { json: { password: `wrong ${i}` }, auth: false });
    if (last.status === 429) break;
  }
  assert.equal(last.status, 429);
  assert.ok(Number(last.headers.get('retry-after')) >= 1);
  const page = await strangerPage();
  await page.goto(made.body.url);
  await page.locator('#public-password-input').fill('one more try');
  await page.getByRole('button', { name: 'Open', exact: true }).click();
  await page.locator('#public-error', { hasText: /retry in \d+ s/ }).waitFor();
  assert.equal(await page.locator('#public-password').isVisible(), true);
  await page.context().close();
});

test('the share pages reported no errors and no CSP violations', () => {
  assert.deepEqual(pageProblems, []);
});

test('the public page is served at /s/<link> to browsers only, with the page\'s CSP', async () => {
  const link = folderLink.split('/s/')[1];
  const html = await fetch(`${BASE}/s/${link}`, { headers: { accept: 'text/html' } });
  assert.equal(html.status, 200);
  assert.match(html.headers.get('content-type'), /text\/html/);
  assert.match(html.headers.get('content-security-policy'), /default-src 'self'.*frame-ancestors 'none'/);
  const json = await fetch(`${BASE}/s/${link}`, { headers: { accept: 'application/json' } });
  assert.equal(json.status, 404);
  assert.ok(statSync(join(ARTIFACTS, 'public-folder-375px.png')).size > 0);
});
