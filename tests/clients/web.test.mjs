// web.test.mjs: the chat page at / in a real browser (Debian's chromium, driven by
// playwright-core@1.65.1). The model's chat template is the bare messages (raw.jinja), so that a
// chat answer is llama.cpp's greedy golden continuation (tests/integration/golden). Checks: the
// golden text at temperature 0, the answer streaming in and Stop freeing the slot (/health), the
// conversation kept across a reload, model text never becoming HTML (<script> shows as text), and
// the page under --api-key asking for the key once. Saves a screenshot: to $SHIMMY_SCREENSHOT when
// set (docs/web-chat.png was made so), else into the system's temporary folder, so that a test run
// leaves the source tree as it was.
import { tmpdir } from 'node:os';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before } from 'node:test';
import { MODEL, importSdk, root, startShimmy } from './server.mjs';

const { chromium } = await importSdk('playwright-core');

const CHROMIUM = process.env.SHIMMY_CHROMIUM ?? '/usr/bin/chromium';
const DEADLINE_MS = 20000;
const golden = readFileSync(join(root, 'tests/integration/golden/stories260K.jsonl'), 'utf8')
  .split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l))
  .find((g) => g.prompt === 'Once upon a time' && g.max_tokens === 64);
const rawTemplate = (home) => writeFileSync(join(home, 'raw.jinja'),
  '{% for m in messages %}{{ m.content }}{% endfor %}');
const common = { prepare: rawTemplate, env: {} };
const shimmy = startShimmy({ prefix: 'shimmy-web-', ...common,
  args: ['--ctx', '32768', '--parallel', '1', '--chat-template-file', `${MODEL}=raw.jinja`] });
const keyed = startShimmy({ prefix: 'shimmy-webkey-', ...common, args: ['--api-key', 'sk-web-1'] });

let browser;
before(async () => {
  assert.ok(existsSync(CHROMIUM), `chromium missing at ${CHROMIUM}: run scripts/test-deps.sh`);
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
});
after(async () => { await browser?.close(); });

async function openPage(url) {
  const page = await browser.newPage({ viewport: { width: 1100, height: 720 } });
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('dialog', (d) => { errors.push(`dialog: ${d.message()}`); d.dismiss(); });
  await page.goto(url);
  return { page, errors };
}

async function setSetting(page, id, value) {
  if (await page.locator('#settings').isHidden()) await page.click('#gear');
  await page.fill(`#${id}`, String(value));
  await page.locator(`#${id}`).dispatchEvent('change');
}

async function ask(page, text) {
  await page.fill('#prompt', text);
  await page.press('#prompt', 'Enter');
}

const lastAnswer = (page) => page.locator('.msg.assistant .body').last();
const storedConv = (page) => page.evaluate(() => {
  const convs = JSON.parse(localStorage.getItem('shimmy.convs'));
  return convs.find((c) => c.id === JSON.parse(localStorage.getItem('shimmy.current')));
});

shimmy.it('GET / is the page for a browser and the JSON hint for API clients', async () => {
  const html = await fetch(`${shimmy.url}/`, { headers: { Accept: 'text/html' } });
  assert.match(html.headers.get('content-type'), /^text\/html/);
  assert.match(await html.text(), /<title>shimmy<\/title>/);
  const json = await (await fetch(`${shimmy.url}/`)).json();
  assert.equal(json.name, 'shimmy');
  assert.equal((await fetch(`${shimmy.url}/ui/app.js`)).status, 200);
  assert.equal((await fetch(`${shimmy.url}/ui/nothing.js`)).status, 404);
});

shimmy.it('greedy answer, Shift+Enter, reload keeps the conversation, screenshot', async () => {
  const { page, errors } = await openPage(shimmy.url);
  await page.waitForFunction((m) => document.querySelector('#model').value === m, MODEL);
  await setSetting(page, 'temperature', 0);
  await setSetting(page, 'max_tokens', 64);
  await page.fill('#prompt', 'Once upon');
  await page.press('#prompt', 'Shift+Enter'); // a new line, not a send
  assert.equal(await page.inputValue('#prompt'), 'Once upon\n');
  assert.equal(await page.locator('.msg').count(), 0);
  await ask(page, 'Once upon a time');
  await page.waitForFunction(() => !document.querySelector('#send').hidden, null, { timeout: DEADLINE_MS });
  const conv = await storedConv(page);
  assert.equal(conv.messages[1].content, golden.text);
  const shown = (await lastAnswer(page).innerText()).replace(/\s+/g, ' ').trim();
  assert.equal(shown, golden.text.replace(/\s+/g, ' ').trim());
  assert.match(await page.locator('.msg.assistant .meta').last().innerText(), /^64 tokens/);
  await page.screenshot({ path: process.env.SHIMMY_SCREENSHOT || join(tmpdir(), 'shimmy-web-chat.png') });
  await page.reload();
  await page.waitForSelector('.msg.assistant');
  assert.equal((await page.locator('.msg.user .body').innerText()).trim(), 'Once upon a time');
  assert.equal((await storedConv(page)).messages[1].content, golden.text);
  assert.equal(await page.locator('#convs li').count(), 1);
  assert.deepEqual(errors, []);
  await page.close();
});

shimmy.it('a long answer streams in; Stop ends it and the slot is freed', async () => {
  const { page, errors } = await openPage(shimmy.url);
  await page.waitForFunction((m) => document.querySelector('#model').value === m, MODEL);
  await page.click('#new');
  await setSetting(page, 'temperature', 0.8);
  await setSetting(page, 'max_tokens', 30000);
  await ask(page, 'Once upon a time');
  // Text grows while the Stop button shows: the answer streams.
  await page.waitForFunction(() => {
    const b = [...document.querySelectorAll('.msg.assistant .body')].pop();
    return b && b.innerText.length > 200 && !document.querySelector('#stop').hidden;
  }, null, { timeout: DEADLINE_MS });
  const health = async () => (await (await fetch(`${shimmy.url}/health`)).json()).models[0];
  assert.equal((await health()).active, 1);
  await page.click('#stop');
  await page.waitForFunction(() => !document.querySelector('#send').hidden);
  assert.equal(await page.locator('.msg.assistant .meta').last().innerText(), 'stopped');
  const end = Date.now() + 5000;
  let h = await health();
  while (h.active !== 0 && Date.now() < end) {
    await new Promise((r) => setTimeout(r, 50));
    h = await health();
  }
  assert.equal(h.active, 0, 'the slot is still busy 5 s after Stop');
  const kept = (await storedConv(page)).messages[1].content;
  assert.ok(kept.length > 200, 'the stopped answer is kept');
  assert.deepEqual(errors, []);
  await page.close();
});

shimmy.it('model text is never HTML: <script>, tags and javascript: links stay text', async () => {
  const { page, errors } = await openPage(shimmy.url);
  const evil = '# Title <img src=x onerror="window.pwned=1">\n\n<script>window.pwned=2</script>\n' +
    '**bold** and `<b>code</b>` [x](javascript:window.pwned=3)\n\n```html\n<script>window.pwned=4</script>\n```';
  const out = await page.evaluate((src) => {
    const box = document.createElement('div');
    box.append(window.shimmy.renderMarkdown(src));
    document.body.append(box);
    return { text: box.textContent, scripts: box.querySelectorAll('script,img,b').length,
      strong: box.querySelectorAll('strong').length, links: box.querySelectorAll('a').length,
      h: box.querySelector('h3')?.textContent };
  }, evil);
  assert.equal(out.scripts, 0);
  assert.equal(out.strong, 1);
  assert.equal(out.links, 0);
  assert.match(out.text, /<script>window\.pwned=2<\/script>/);
  assert.equal(out.h, 'Title <img src=x onerror="window.pwned=1">');
  // The same through a stored conversation, as after a reload.
  await page.evaluate((src) => {
    localStorage.setItem('shimmy.convs', JSON.stringify([{ id: 'x1', title: 't', messages: [
      { role: 'user', content: '<script>window.pwned=5</script>' },
      { role: 'assistant', content: src, reasoning: '<script>window.pwned=6</script>',
        tool_calls: [{ id: 'c', type: 'function', function: { name: '<b>f</b>', arguments: '{"a":"<i>"}' } }] }] }]));
    localStorage.setItem('shimmy.current', '"x1"');
  }, evil);
  await page.reload();
  await page.waitForSelector('.msg.assistant');
  assert.equal(await page.locator('#log script, #log img, #log b, #log i').count(), 0);
  assert.match(await page.locator('.msg.user').innerText(), /<script>window\.pwned=5<\/script>/);
  assert.equal(await page.locator('.msg.assistant details.reasoning').getAttribute('open'), null);
  assert.match(await page.locator('.msg.assistant details.tool').innerText(), /Tool call: <b>f<\/b>/);
  await page.waitForTimeout(200);
  assert.equal(await page.evaluate(() => window.pwned), undefined);
  assert.deepEqual(errors, []);
  await page.close();
});

keyed.it('with --api-key the page asks for the key once, then works', async () => {
  const { page } = await openPage(keyed.url);
  await page.waitForSelector('#key:not([hidden])');
  await page.fill('#keyin', 'sk-web-1');
  await page.click('#keyok');
  await page.waitForFunction((m) => document.querySelector('#model').value === m, MODEL);
  await setSetting(page, 'temperature', 0);
  await setSetting(page, 'max_tokens', 8);
  await ask(page, 'Hello');
  await page.waitForFunction(() => !document.querySelector('#send').hidden, null, { timeout: DEADLINE_MS });
  const conv = await storedConv(page);
  assert.ok(conv.messages[1].content.length > 0 && !conv.messages[1].error, JSON.stringify(conv.messages[1]));
  await page.reload(); // same tab: the key is kept for the session
  await page.waitForFunction((m) => document.querySelector('#model').value === m, MODEL);
  assert.ok(await page.locator('#key').isHidden());
  await page.close();
});
