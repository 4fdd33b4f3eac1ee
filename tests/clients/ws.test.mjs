// ws.test.mjs: WebSocket streaming (GET /ws/generate, /ws/chat) with the npm ws client
// (ws@8.23.0): the greedy golden text streamed in several token messages and a final message
// with usage and timings, a chat request, {"type":"cancel"} mid-stream (the slot is freed in
// /health) and a second request on the same socket, ping/pong, malformed JSON (an error message,
// then close code 1007), a foreign Origin refused at the handshake (403), a plain GET (400).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { MODEL, importSdk, root, startShimmy } from './server.mjs';

const { default: WebSocket } = await importSdk('ws');

const DEADLINE_MS = 20000;
const golden = readFileSync(join(root, 'tests/integration/golden/stories260K.jsonl'), 'utf8')
  .split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l))
  .find((g) => g.prompt === 'Once upon a time' && g.max_tokens === 64);
const shimmy = startShimmy({ prefix: 'shimmy-ws-', args: ['--ctx', '32768', '--parallel', '1'] });
const GREEDY = { model: MODEL, prompt: 'Once upon a time', raw: true,
  options: { temperature: 0, num_predict: 64, repeat_penalty: 1 } };

// A socket whose messages are read in order with next().
function open(path, opts = {}) {
  const ws = new WebSocket(`ws://127.0.0.1:${shimmy.port}${path}`, opts);
  const inbox = [];
  const waiters = [];
  ws.on('message', (m, binary) => {
    const msg = binary ? m : JSON.parse(m.toString());
    if (waiters.length) waiters.shift()(msg); else inbox.push(msg);
  });
  ws.next = () => (inbox.length ? Promise.resolve(inbox.shift()) : new Promise((res, rej) => {
    const t = setTimeout(() => rej(new Error(`no message within ${DEADLINE_MS} ms`)), DEADLINE_MS);
    waiters.push((m) => { clearTimeout(t); res(m); });
  }));
  ws.closed = new Promise((res) => ws.on('close', (code, reason) => res({ code, reason: reason.toString() })));
  ws.opened = new Promise((res, rej) => { ws.on('open', res); ws.on('error', rej); });
  return ws;
}

// Reads one answer: the start message, the token messages, and the final one.
async function answer(ws) {
  const start = await ws.next();
  assert.equal(start.type, 'start', JSON.stringify(start));
  let text = '';
  let tokens = 0;
  for (;;) {
    const m = await ws.next();
    if (m.type === 'token') { text += m.content ?? ''; tokens++; continue; }
    return { text, tokens, last: m, start };
  }
}

const health = async () => (await (await fetch(`${shimmy.url}/health`)).json()).models[0];

shimmy.it('generate streams the golden text, then a final message with usage and timings', async () => {
  const ws = open('/ws/generate');
  await ws.opened;
  ws.send(JSON.stringify(GREEDY));
  const a = await answer(ws);
  assert.equal(a.text, golden.text);
  assert.ok(a.tokens > 1, `${a.tokens} token messages`);
  assert.equal(a.last.type, 'done');
  assert.equal(a.last.finish_reason, 'length');
  assert.equal(a.last.usage.completion_tokens, 64);
  assert.ok(a.last.usage.prompt_tokens > 0);
  for (const k of ['queued_ms', 'prompt_ms', 'generation_ms', 'tokens_per_second'])
    assert.equal(typeof a.last.timings[k], 'number', k);
  ws.close(1000);
  assert.equal((await ws.closed).code, 1000);
});

shimmy.it('chat: the fields of /v1/chat/completions', async () => {
  const ws = open('/ws/chat');
  await ws.opened;
  ws.send(JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'Hi' }], max_tokens: 8,
    temperature: 0, stream: false }));
  const a = await answer(ws);
  assert.equal(a.last.type, 'done');
  assert.equal(a.last.usage.completion_tokens, 8);
  assert.ok(a.text.length > 0);
  ws.send(JSON.stringify({ model: 'nosuch', messages: [{ role: 'user', content: 'Hi' }] }));
  const e = await ws.next();
  assert.equal(e.type, 'error');
  assert.equal(e.error.code, 404);
  assert.equal(e.error.param, 'model');
  ws.send(JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'Hi' }], max_tokens: 2 }));
  assert.equal((await answer(ws)).last.usage.completion_tokens, 2); // the socket stays usable
  ws.close();
});

shimmy.it('cancel mid-stream frees the slot; the next request on the socket gets the golden text', async () => {
  const ws = open('/ws/generate');
  await ws.opened;
  ws.send(JSON.stringify({ ...GREEDY, options: { temperature: 0.8, num_predict: 30000 } }));
  assert.equal((await ws.next()).type, 'start');
  let seen = 0;
  while (seen < 300) {
    const m = await ws.next();
    assert.equal(m.type, 'token');
    seen += (m.content ?? '').length;
  }
  assert.equal((await health()).active, 1);
  ws.send(JSON.stringify({ type: 'cancel' }));
  let m;
  do m = await ws.next(); while (m.type === 'token');
  assert.deepEqual(m, { type: 'done', finish_reason: 'cancelled' });
  assert.equal((await health()).active, 0, 'the slot is still busy after cancel');
  ws.send(JSON.stringify(GREEDY));
  assert.equal((await answer(ws)).text, golden.text);
  ws.close();
});

shimmy.it('ping gets a pong', async () => {
  const ws = open('/ws/generate');
  await ws.opened;
  const pong = new Promise((res) => ws.on('pong', (d) => res(d.toString())));
  ws.ping('hello');
  assert.equal(await pong, 'hello');
  ws.close();
});

shimmy.it('malformed JSON: an error message, then close code 1007', async () => {
  const ws = open('/ws/generate');
  await ws.opened;
  ws.send('{"model": "stories260k",');
  const e = await ws.next();
  assert.equal(e.type, 'error');
  assert.equal(e.error.code, 400);
  assert.equal(e.error.type, 'bad_json');
  const c = await ws.closed;
  assert.equal(c.code, 1007);
});

shimmy.it('a foreign Origin is refused at the handshake; a loopback page is let in', async () => {
  const ws = open('/ws/generate', { origin: 'https://evil.example' });
  const status = await new Promise((res) => {
    ws.on('unexpected-response', (req, r) => res(r.statusCode));
    ws.on('error', () => {});
  });
  assert.equal(status, 403);
  const ok = open('/ws/generate', { origin: 'http://localhost:8080' });
  await ok.opened;
  ok.close();
  const plain = await fetch(`${shimmy.url}/ws/generate`);
  assert.equal(plain.status, 400);
  assert.match((await plain.json()).error.message, /WebSocket/);
});
