// The upload-link page (/u/<link>) in Debian's headless Chromium (run by
// run.sh; PAN_URL is the api with 1 MiB chunks): a stranger who never signs
// in gives the link's password and uploads two files with tus; they land in
// the owner's folder, byte for byte, and the page showed nothing of it.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const BASE = process.env.PAN_URL;
assert.ok(BASE, 'PAN_URL must be set (run tests/browser/run.sh)');
const OWNER = `drop-${Date.now().toString(36)}`;
const PASSWORD = 'correct horse battery';

let browser;
let tmp;
let token;

async function api(method, path, json) {
  const headers = { accept: 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  if (json !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(BASE + path, { method, headers, body: json !== undefined ? JSON.stringify(json) : undefined });
  const text = await res.text();
  return { status: res.status, body: text && res.headers.get('content-type')?.includes('json') ? JSON.parse(text) : text };
}

before(async () => {
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  });
  tmp = mkdtempSync(join(tmpdir(), 'pan-drop-'));
  assert.equal((await api('POST', '/usr/signup', { username: OWNER, password: PASSWORD })).status, 201);
  token = (await api('POST', '/usr/signin', { username: OWNER, password: PASSWORD })).body.token;
});

after(async () => {
  await browser?.close();
  rmSync(tmp, { recursive: true, force: true });
});

test('a stranger uploads through an upload link page into the owner\'s folder', async () => {
  const folder = await api('POST', '/folder/create', { name: 'Inbox' });
  assert.equal(folder.status, 201);
  const made = await api('POST', '/uplink/create', { folder: folder.body.id, password: 'let me in 7' });
  assert.equal(made.status, 201, JSON.stringify(made.body));
  const files = { 'a.txt': Buffer.from('hello from a stranger\n'), 'big.bin': Buffer.alloc(3 * 1024 * 1024 + 17, 7) };
  for (const [name, data] of Object.entries(files)) writeFileSync(join(tmp, name), data);

  const context = await browser.newContext();
  const page = await context.newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push(e.message));
  page.on('console', (m) => m.type() === 'error' && problems.push(m.text()));
  await page.goto(made.body.url);
  await page.fill('#drop-password', 'let me in 7');
  await page.setInputFiles('#drop-files', Object.keys(files).map((n) => join(tmp, n)));
  await page.click('button[type=submit]');
  await page.waitForFunction(() => {
    const items = [...document.querySelectorAll('#drop-progress li')];
    return items.length === 2 && items.every((li) => li.textContent.endsWith(': sent'));
  }, null, { timeout: 30_000 });
  await context.close();
  assert.deepEqual(problems, []);

  for (const [name, data] of Object.entries(files)) {
    const stat = await api('GET', `/folder/stat?path=${encodeURIComponent(`/Inbox/${name}`)}`);
    assert.equal(stat.status, 200, JSON.stringify(stat.body));
    const res = await fetch(`${BASE}/file/download?id=${stat.body.id}`, { headers: { authorization: `Bearer ${token}` } });
    assert.ok(Buffer.from(await res.arrayBuffer()).equals(data), `${name} arrived whole`);
  }
});
