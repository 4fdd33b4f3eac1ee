// keys.test.mjs: the official OpenAI (openai@6.30.1) and Ollama (ollama@0.6.4) clients against
// shimmy started with --api-key (docs/SECURITY.md): with the key they work (models, a completion,
// a stream); without it or with a wrong one every call fails with the 401 that the SDK surfaces:
// OpenAI's AuthenticationError (status 401, code invalid_api_key), Ollama's ResponseError
// (status_code 401, shimmy's message), and the Anthropic client (@anthropic-ai/sdk, x-api-key):
// AuthenticationError with Anthropic's error type.
import assert from 'node:assert/strict';
import { MODEL, importSdk, startShimmy } from './server.mjs';

const { default: OpenAI } = await importSdk('openai');
const { Ollama } = await importSdk('ollama');
const { default: Anthropic } = await importSdk('@anthropic-ai/sdk');

const KEY = 'sk-shimmy-test-7f3a';
const shimmy = startShimmy({ prefix: 'shimmy-keys-', args: ['--api-key', KEY] });
const { it } = shimmy;

// apiKey null: the SDK sends no Authorization header at all (a header set to null is dropped).
const openai = (apiKey) => new OpenAI({ baseURL: `${shimmy.url}/v1`, apiKey: apiKey ?? 'unused',
  maxRetries: 0, timeout: 60000,
  ...(apiKey === null ? { defaultHeaders: { Authorization: null } } : {}) });
const ollama = (headers) => new Ollama({ host: shimmy.url, headers });

const CHAT = { model: MODEL, messages: [{ role: 'user', content: 'Hi' }], max_tokens: 4,
  temperature: 0 };

async function rejectsOpenAI401(call, message) {
  await assert.rejects(call, (e) => {
    assert.ok(e instanceof OpenAI.AuthenticationError, `not an AuthenticationError: ${e}`);
    assert.equal(e.status, 401);
    assert.equal(e.code, 'invalid_api_key');
    assert.equal(e.type, 'invalid_request_error');
    assert.match(e.message, message);
    assert.match(e.headers.get('www-authenticate') ?? '', /^Bearer/);
    return true;
  });
}

async function rejectsOllama401(call, message) {
  await assert.rejects(call, (e) => {
    assert.equal(e.name, 'ResponseError', `not Ollama's ResponseError: ${e}`);
    assert.equal(e.status_code, 401);
    assert.match(e.error, message);
    return true;
  });
}

it('OpenAI client with the key: models, chat, stream, completion', async () => {
  const c = openai(KEY);
  const ids = [];
  for await (const m of c.models.list()) ids.push(m.id);
  assert.deepEqual(ids, [MODEL]);
  const chat = await c.chat.completions.create(CHAT);
  assert.equal(chat.choices[0].finish_reason, 'length');
  assert.equal(chat.usage.completion_tokens, 4);
  let chunks = 0;
  for await (const ch of await c.chat.completions.create({ ...CHAT, stream: true })) {
    assert.equal(ch.object, 'chat.completion.chunk');
    chunks++;
  }
  assert.ok(chunks > 1, `${chunks} chunks`);
  const comp = await c.completions.create({ model: MODEL, prompt: 'Once', max_tokens: 3 });
  assert.equal(comp.usage.completion_tokens, 3);
});

it('OpenAI client with a wrong key: AuthenticationError 401 on every call', async () => {
  const c = openai('sk-wrong');
  await rejectsOpenAI401(() => c.models.list(), /invalid API key/);
  await rejectsOpenAI401(() => c.chat.completions.create(CHAT), /invalid API key/);
  await rejectsOpenAI401(() => c.chat.completions.create({ ...CHAT, stream: true }),
    /invalid API key/);
  await rejectsOpenAI401(() => c.embeddings.create({ model: MODEL, input: 'x' }),
    /invalid API key/);
});

it('OpenAI client without a key: AuthenticationError 401 naming the missing key', async () => {
  const c = openai(null);
  await rejectsOpenAI401(() => c.models.list(), /missing API key/);
  await rejectsOpenAI401(
    () => c.completions.create({ model: MODEL, prompt: 'Once', max_tokens: 2 }), /missing API key/);
});

it('Ollama client with the key: list, generate, chat, stream', async () => {
  const c = ollama({ Authorization: `Bearer ${KEY}` });
  const list = await c.list();
  assert.deepEqual(list.models.map((m) => m.name), [MODEL]);
  const g = await c.generate({ model: MODEL, prompt: 'Once', options: { num_predict: 3 } });
  assert.equal(g.done, true);
  assert.equal(g.eval_count, 3);
  const r = await c.chat({ model: MODEL, messages: [{ role: 'user', content: 'Hi' }],
    options: { num_predict: 3 } });
  assert.equal(r.message.role, 'assistant');
  let parts = 0;
  for await (const p of await c.chat({ model: MODEL, messages: [{ role: 'user', content: 'Hi' }],
    options: { num_predict: 3 }, stream: true })) parts += p.done ? 0 : 1;
  assert.ok(parts >= 1, `${parts} parts`);
  const x = ollama({ 'x-api-key': KEY });
  assert.equal((await x.show({ model: MODEL })).details.format, 'gguf');
});

it('Ollama client with a wrong key or none: ResponseError 401 on every call', async () => {
  const wrong = ollama({ Authorization: 'Bearer sk-wrong' });
  await rejectsOllama401(() => wrong.list(), /invalid API key/);
  await rejectsOllama401(() => wrong.generate({ model: MODEL, prompt: 'Once' }), /invalid API key/);
  await rejectsOllama401(() => wrong.chat({ model: MODEL,
    messages: [{ role: 'user', content: 'Hi' }], stream: true }), /invalid API key/);
  const none = ollama(undefined);
  await rejectsOllama401(() => none.list(), /missing API key/);
  await rejectsOllama401(() => none.embed({ model: MODEL, input: 'x' }), /missing API key/);
  // Ollama's own /api/version needs the key too; /health stays open for load balancers.
  await rejectsOllama401(() => none.version(), /missing API key/);
  assert.equal((await fetch(`${shimmy.url}/health`)).status, 200);
});

it('Anthropic client: works with the key in x-api-key, AuthenticationError without it', async () => {
  const anthropic = (apiKey) => new Anthropic({ baseURL: shimmy.url, apiKey, maxRetries: 0,
    timeout: 60000 });
  const ask = { model: MODEL, max_tokens: 4, messages: [{ role: 'user', content: 'Hi' }] };
  const m = await anthropic(KEY).messages.create(ask);
  assert.equal(m.type, 'message');
  await assert.rejects(anthropic('sk-wrong').messages.create(ask), (e) => {
    assert.ok(e instanceof Anthropic.AuthenticationError, `not an AuthenticationError: ${e}`);
    assert.equal(e.status, 401);
    assert.equal(e.error?.error?.type, 'authentication_error');
    return true;
  });
});
