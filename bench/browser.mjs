// The web page's upload of one big file in headless Chromium (issue 15,
// item 5): time from picking the file to `done`, against the page's time to
// send the same chunks alone (the same browser, 4 at a time as the page, hashes
// known beforehand, then complete → done). Run through bench/browser.
import { createHash } from 'node:crypto';
import { createReadStream, statSync } from 'node:fs';
import { chromium } from '../tests/browser/node_modules/playwright-core/index.mjs';

const [BASE, FILE, RUNS = '3'] = process.argv.slice(2);
const size = statSync(FILE).size;

async function api(method, path, { token, json } = {}) {
  const headers = {};
  if (token) headers.authorization = `Bearer ${token}`;
  if (json) headers['content-type'] = 'application/json';
  const res = await fetch(BASE + path, { method, headers, body: json ? JSON.stringify(json) : undefined });
  const text = await res.text();
  return { status: res.status, body: text.startsWith('{') ? JSON.parse(text) : text };
}

async function digests() {
  const [s1, s256] = [createHash('sha1'), createHash('sha256')];
  for await (const piece of createReadStream(FILE, { highWaterMark: 8 << 20 })) {
    s1.update(piece);
    s256.update(piece);
  }
  return { sha1: s1.digest('hex'), sha256: s256.digest('hex') };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const { sha1, sha256 } = await digests();
const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] });
const page = await (await browser.newContext()).newPage();
const user = `bench-${Date.now().toString(36)}`;
await api('POST', '/usr/signup', { json: { username: user, password: 'benchmark pw' } });
await page.goto(`${BASE}/usr/signin`);
await page.locator('#view-signin').getByLabel('Username').fill(user);
await page.locator('#view-signin').getByLabel('Password').fill('benchmark pw');
await page.locator('#view-signin').getByRole('button', { name: 'Sign in' }).click();
await page.waitForURL(`${BASE}/`);
const token = await page.evaluate(() => sessionStorage.getItem('pan.token'));

async function purgeAll() {
  const q = await api('GET', '/file/query', { token });
  for (const f of q.body.files || q.body.entries || []) {
    await api('DELETE', `/file/delete?id=${f.id}&permanent=true`, { token });
  }
}

const pageTimes = [];
const chunkTimes = [];
for (let run = 0; run < Number(RUNS); run++) {
  // 1. The page: pick → done (hashing and sending in parallel).
  await purgeAll();
  const t0 = Date.now();
  await page.locator('#file-input').setInputFiles(FILE);
  await page.locator('li.upload[data-state="done"]').first().waitFor({ timeout: 600_000 });
  pageTimes.push((Date.now() - t0) / 1000);
  await page.evaluate(() => document.querySelectorAll('li.upload').forEach((li) => li.remove()));

  // 2. The same browser sends the chunks alone: hashes known, 4 lanes, then complete → done.
  await purgeAll();
  await page.setInputFiles('#file-input', []);
  const handle = await page.evaluateHandle(() => document.createElement('input'));
  await handle.evaluate((el) => { el.type = 'file'; el.id = 'bench-file'; document.body.append(el); });
  await page.setInputFiles('#bench-file', FILE);
  const seconds = await page.evaluate(async ({ token, sha1, sha256, size }) => {
    const file = document.getElementById('bench-file').files[0];
    const auth = { authorization: `Bearer ${token}` };
    const t0 = performance.now();
    const init = await (await fetch('/file/mupload/init', {
      method: 'POST', headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({ filename: `alone-${Date.now()}.bin`, filehash: sha1, sha256, filesize: size }),
    })).json();
    let next = 0;
    const lane = async () => {
      for (;;) {
        const i = next++;
        if (i >= init.chunkcount) return;
        const r = await fetch(`/file/mupload/uppart?uploadID=${init.uploadID}&chkidx=${i}`, {
          method: 'POST', headers: auth, body: file.slice(i * init.chunksize, (i + 1) * init.chunksize),
        });
        if (!r.ok) throw new Error(`chunk ${i}: ${r.status}`);
      }
    };
    await Promise.all(Array.from({ length: 4 }, lane)); // the page sends 4 at a time by default
    await fetch(`/file/mupload/complete?uploadID=${init.uploadID}`, { method: 'POST', headers: auth });
    for (;;) {
      const st = await (await fetch(`/file/mupload/status?uploadID=${init.uploadID}`, { headers: auth })).json();
      if (st.state === 'done') break;
      await new Promise((r) => setTimeout(r, 5));
    }
    return (performance.now() - t0) / 1000;
  }, { token, sha1, sha256, size });
  chunkTimes.push(seconds);
  await handle.evaluate((el) => el.remove());
  console.log(`run ${run + 1}: page pick→done ${pageTimes.at(-1).toFixed(2)} s, chunks alone + complete→done ${seconds.toFixed(2)} s`);
}
await browser.close();
const [p, c] = [median(pageTimes), median(chunkTimes)];
console.log(`| ${(size / 2 ** 30).toFixed(2)} GiB from the web page, pick → done | ${p.toFixed(2)} s (${Math.min(...pageTimes).toFixed(2)}–${Math.max(...pageTimes).toFixed(2)}) | the page's chunks alone + complete → done: ${c.toFixed(2)} s (${Math.min(...chunkTimes).toFixed(2)}–${Math.max(...chunkTimes).toFixed(2)}) | ${(p / c).toFixed(2)} | ≤ 1.1 |`);
