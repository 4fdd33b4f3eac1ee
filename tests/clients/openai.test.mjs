// openai.test.mjs: shimmy driven by the official OpenAI SDK for JavaScript (openai@6.30.1, pinned
// in package.json / package-lock.json, installed by scripts/test-deps.sh).
//
// Starts build/shimmy (SHIMMY_BIN) on a free loopback port with stories260K (SHIMMY_TEST_MODELS),
// then lists models, creates chat completions and completions, plain and streamed, and checks
// that greedy streamed and plain texts agree (and that the completion equals llama.cpp's golden
// output). The server's output is printed when a test fails; the server is killed at the end.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { MODEL, importSdk, root, startShimmy } from './server.mjs';

const { default: OpenAI } = await importSdk('openai');

const shimmy = startShimmy({ prefix: 'shimmy-clients-' });
const { it } = shimmy;

const client = () => new OpenAI({ baseURL: `${shimmy.url}/v1`, apiKey: 'none',
  maxRetries: 0, timeout: 60000 });

function golden() {
  const text = readFileSync(join(root, 'tests/integration/golden/stories260K.jsonl'), 'utf8');
  return text.split('\n').filter((l) => l && !l.startsWith('#')).map((l) => JSON.parse(l));
}

it('lists the model', async () => {
  const ids = [];
  for await (const m of client().models.list()) ids.push(m.id);
  assert.deepEqual(ids, [MODEL]);
  const m = await client().models.retrieve(MODEL);
  assert.equal(m.id, MODEL);
  assert.equal(m.object, 'model');
});

it('chat completion, plain and streamed, agree at temperature 0', async () => {
  const params = { model: MODEL, messages: [{ role: 'user', content: 'Tell me a story.' }],
    max_tokens: 24, temperature: 0 };
  const plain = await client().chat.completions.create(params);
  assert.equal(plain.object, 'chat.completion');
  assert.equal(plain.choices.length, 1);
  assert.equal(plain.choices[0].message.role, 'assistant');
  const content = plain.choices[0].message.content;
  assert.ok(typeof content === 'string' && content.length > 0, 'empty chat answer');
  assert.equal(plain.choices[0].finish_reason, 'length');
  assert.equal(plain.usage.completion_tokens, 24);
  assert.equal(plain.usage.total_tokens, plain.usage.prompt_tokens + 24);

  const stream = await client().chat.completions.create({ ...params, stream: true,
    stream_options: { include_usage: true } });
  let text = '';
  let role = null;
  let finish = null;
  let usage = null;
  for await (const chunk of stream) {
    assert.equal(chunk.object, 'chat.completion.chunk');
    if (chunk.usage) usage = chunk.usage;
    const c = chunk.choices[0];
    if (!c) continue;
    role ??= c.delta.role ?? null;
    text += c.delta.content ?? '';
    if (c.finish_reason) finish = c.finish_reason;
  }
  assert.equal(role, 'assistant');
  assert.equal(finish, 'length');
  assert.equal(text, content);
  assert.ok(usage, 'no usage chunk with include_usage');
  assert.equal(usage.completion_tokens, 24);
});

it('completion, plain and streamed, equal llama.cpp\'s greedy text', async () => {
  const g = golden()[0];
  const params = { model: MODEL, prompt: g.prompt, max_tokens: g.max_tokens, temperature: 0 };
  const plain = await client().completions.create(params);
  assert.equal(plain.object, 'text_completion');
  assert.ok(plain.choices[0].text.length > 0, 'empty completion');
  assert.equal(plain.choices[0].text, g.text);
  assert.equal(plain.choices[0].finish_reason, 'length');
  assert.equal(plain.usage.completion_tokens, g.max_tokens);

  const stream = await client().completions.create({ ...params, stream: true });
  let text = '';
  for await (const chunk of stream) text += chunk.choices[0]?.text ?? '';
  assert.equal(text, plain.choices[0].text);
});

it('stop strings and seeds through the SDK', async () => {
  const g = golden()[0];
  const cut = g.text.slice(0, g.text.indexOf('Lily'));
  const r = await client().completions.create({ model: MODEL, prompt: g.prompt,
    max_tokens: g.max_tokens, temperature: 0, stop: ['Lily'] });
  assert.equal(r.choices[0].text, cut);
  assert.equal(r.choices[0].finish_reason, 'stop');
  const sample = async (seed) => (await client().completions.create({ model: MODEL,
    prompt: g.prompt, max_tokens: 32, temperature: 0.9, seed })).choices[0].text;
  assert.equal(await sample(42), await sample(42));
});

it('response_format json_schema constrains the answer', async () => {
  const schema = { type: 'object', properties: { name: { type: 'string' }, age: { type: 'integer' } },
    required: ['name', 'age'], additionalProperties: false };
  const r = await client().chat.completions.create({ model: MODEL, temperature: 0, max_tokens: 200,
    messages: [{ role: 'user', content: 'Tell me about Lily' }],
    response_format: { type: 'json_schema', json_schema: { name: 'person', strict: true, schema } } });
  assert.equal(r.choices[0].finish_reason, 'stop');
  const v = JSON.parse(r.choices[0].message.content);
  assert.deepEqual(Object.keys(v), ['name', 'age']);
  assert.equal(typeof v.name, 'string');
  assert.ok(Number.isInteger(v.age));
  await assert.rejects(client().chat.completions.create({ model: MODEL, max_tokens: 4,
    messages: [{ role: 'user', content: 'hi' }],
    response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { $ref: '#/a' } } } }),
  (e) => e instanceof OpenAI.BadRequestError && e.param === 'response_format' &&
    /'\$ref' is not supported/.test(e.message));
});

it('errors come back as the SDK\'s error classes', async () => {
  await assert.rejects(client().models.retrieve('no-such-model'),
    (e) => e instanceof OpenAI.NotFoundError && e.status === 404);
  await assert.rejects(client().chat.completions.create({ model: 'no-such-model',
    messages: [{ role: 'user', content: 'hi' }] }),
  (e) => e instanceof OpenAI.NotFoundError && e.code === 'model_not_found');
  await assert.rejects(client().chat.completions.create({ model: MODEL,
    messages: [{ role: 'user', content: 'hi' }], temperature: 5 }),
  (e) => e instanceof OpenAI.BadRequestError && e.param === 'temperature');
});
