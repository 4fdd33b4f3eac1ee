// openai.test.mjs: shimmy driven by the official OpenAI SDK for JavaScript (openai@6.30.1, pinned
// in package.json / package-lock.json, installed by scripts/test-deps.sh).
//
// Starts build/shimmy (SHIMMY_BIN) on a free loopback port with stories260K (SHIMMY_TEST_MODELS),
// then lists models, creates chat completions and completions, plain and streamed, and checks
// that greedy streamed and plain texts agree (and that the completion equals llama.cpp's golden
// output), then tool calls (tool_choice required and a named function, plain and streamed, a
// tool-result turn) on a second name of the same model served with Hermes 2 Pro's tool-use
// template, tools refused for a template without tool support, and structured output with
// integer bounds. The server's output is printed when a test fails; the server is killed at the end.
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { MODEL, importSdk, modelPath, root, startShimmy } from './server.mjs';

const { default: OpenAI } = await importSdk('openai');

// The same weights under a second name, rendered with a template that can call tools.
const TOOLS_MODEL = 'toolstory';
const TOOLS_TEMPLATE = join(root, 'deps/llama.cpp/models/templates/NousResearch-Hermes-2-Pro-Llama-3-8B-tool_use.jinja');

const shimmy = startShimmy({ prefix: 'shimmy-clients-',
  args: ['--chat-template-file', `${TOOLS_MODEL}=${TOOLS_TEMPLATE}`],
  prepare: (home) => {
    mkdirSync(join(home, 'models'));
    copyFileSync(modelPath, join(home, 'models', `${TOOLS_MODEL}.gguf`));
  } });
const { it } = shimmy;

const client = () => new OpenAI({ baseURL: `${shimmy.url}/v1`, apiKey: 'none',
  maxRetries: 0, timeout: 60000 });

function golden() {
  const text = readFileSync(join(root, 'tests/integration/golden/stories260K.jsonl'), 'utf8');
  return text.split('\n').filter((l) => l && !l.startsWith('#')).map((l) => JSON.parse(l));
}

it('embeddings.create with the default options (base64 on the wire)', async () => {
  const r = await client().embeddings.create({ model: MODEL, input: ['hello world', 'a cat'] });
  assert.equal(r.data.length, 2);
  assert.equal(r.data[0].embedding.length, 64);
  const norm = Math.sqrt(r.data[0].embedding.reduce((a, x) => a + x * x, 0));
  assert.ok(Math.abs(norm - 1) < 1e-5);
  const f = await client().embeddings.create({ model: MODEL, input: 'hello world',
    encoding_format: 'float', dimensions: 8 });
  assert.equal(f.data[0].embedding.length, 8);
  console.log('embeddings', JSON.stringify({ n: r.data.length, dim: r.data[0].embedding.length, norm }));
  await assert.rejects(client().embeddings.create({ model: MODEL, input: 'x', dimensions: 65 }),
    (e) => e.status === 400 && e.param === 'dimensions');
});

it('n choices and log probabilities through the SDK', async () => {
  const r = await client().chat.completions.create({ model: MODEL, temperature: 0, max_tokens: 6,
    n: 3, logprobs: true, top_logprobs: 2,
    messages: [{ role: 'user', content: 'Tell me a story.' }] });
  assert.equal(r.choices.length, 3);
  assert.deepEqual(r.choices.map((c) => c.index), [0, 1, 2]);
  const texts = new Set(r.choices.map((c) => c.message.content));
  assert.equal(texts.size, 1, 'greedy choices differ');
  assert.equal(r.usage.completion_tokens, 18);
  for (const c of r.choices) {
    assert.equal(c.logprobs.content.length, 6);
    for (const t of c.logprobs.content) {
      assert.ok(t.logprob <= 0);
      assert.equal(t.top_logprobs.length, 2);
      assert.equal(t.token, t.top_logprobs[0].token); // greedy: the sampled token is the top one
      assert.ok(t.logprob >= t.top_logprobs[1].logprob);
    }
  }
  const c = await client().completions.create({ model: MODEL, prompt: 'Once upon a time',
    temperature: 0, max_tokens: 4, logprobs: 1 });
  assert.equal(c.choices[0].logprobs.tokens.length, 4);
  assert.equal(c.choices[0].logprobs.tokens.join(''), c.choices[0].text);
});

it('lists the model', async () => {
  const ids = [];
  for await (const m of client().models.list()) ids.push(m.id);
  assert.deepEqual(ids.sort(), [MODEL, TOOLS_MODEL]);
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
    /#\/a/.test(e.message));
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

// ---- tools ----

const weather = { type: 'function', function: { name: 'get_weather', description: 'the weather',
  parameters: { type: 'object', properties: { city: { type: 'string' },
    days: { type: 'integer', minimum: 1, maximum: 7 } }, required: ['city', 'days'],
  additionalProperties: false } } };
const ask = [{ role: 'user', content: 'What is the weather in Paris?' }];
const toolParams = { model: TOOLS_MODEL, messages: ask, tools: [weather], temperature: 0, max_tokens: 300,
  parallel_tool_calls: false };

// arguments: a JSON string valid for weather's parameters.
function assertWeatherArgs(text) {
  const v = JSON.parse(text);
  assert.deepEqual(Object.keys(v).sort(), ['city', 'days'], text);
  assert.equal(typeof v.city, 'string');
  assert.ok(Number.isInteger(v.days) && v.days >= 1 && v.days <= 7, text);
}

function assertOneCall(r) {
  const c = r.choices[0];
  assert.equal(c.finish_reason, 'tool_calls');
  assert.equal(c.message.content, null);
  assert.equal(c.message.tool_calls.length, 1);
  const call = c.message.tool_calls[0];
  assert.equal(call.type, 'function');
  assert.equal(call.function.name, 'get_weather');
  assert.ok(typeof call.id === 'string' && call.id.length > 0);
  assertWeatherArgs(call.function.arguments);
  return call;
}

it('tool_choice required: a call whose arguments validate, even from stories260K', async () => {
  assertOneCall(await client().chat.completions.create({ ...toolParams, tool_choice: 'required' }));
});

it('a named tool_choice: that function, plain and streamed alike', async () => {
  const tool_choice = { type: 'function', function: { name: 'get_weather' } };
  const call = assertOneCall(await client().chat.completions.create({ ...toolParams, tool_choice }));
  const stream = await client().chat.completions.create({ ...toolParams, tool_choice, stream: true });
  const calls = [];
  let finish = null;
  for await (const chunk of stream) {
    const c = chunk.choices[0];
    if (!c) continue;
    for (const d of c.delta.tool_calls ?? []) {
      if (d.id) {
        assert.equal(d.index, calls.length);
        assert.equal(d.type, 'function');
        calls.push({ name: d.function.name, arguments: d.function.arguments ?? '' });
      } else {
        calls[d.index].arguments += d.function.arguments;
      }
    }
    if (c.finish_reason) finish = c.finish_reason;
  }
  assert.equal(finish, 'tool_calls');
  assert.deepEqual(calls, [{ name: call.function.name, arguments: call.function.arguments }]);
});

it('a tool result continues the conversation', async () => {
  const first = await client().chat.completions.create({ ...toolParams, tool_choice: 'required' });
  const call = first.choices[0].message.tool_calls[0];
  const r = await client().chat.completions.create({ model: TOOLS_MODEL, tools: [weather],
    temperature: 0, max_tokens: 16, messages: [...ask, first.choices[0].message,
      { role: 'tool', tool_call_id: call.id, content: '{"sky":"sunny"}' }] });
  assert.equal(r.choices[0].message.role, 'assistant');
  assert.ok(r.usage.prompt_tokens > first.usage.prompt_tokens);
});

it('tools for a template that cannot express them: 400 naming tools', async () => {
  await assert.rejects(client().chat.completions.create({ model: MODEL, messages: ask,
    tools: [weather], max_tokens: 4 }),
  (e) => e instanceof OpenAI.BadRequestError && e.param === 'tools' && /does not support tools/.test(e.message));
});

it('structured output with integer bounds (zod .int().min().max())', async () => {
  const schema = { type: 'object', properties: { n: { type: 'integer', minimum: 3, maximum: 7 } },
    required: ['n'], additionalProperties: false };
  const r = await client().chat.completions.create({ model: MODEL, temperature: 0, max_tokens: 60,
    messages: [{ role: 'user', content: 'Pick a number' }],
    response_format: { type: 'json_schema', json_schema: { name: 'n', strict: true, schema } } });
  assert.equal(r.choices[0].finish_reason, 'stop');
  const v = JSON.parse(r.choices[0].message.content);
  assert.ok(Number.isInteger(v.n) && v.n >= 3 && v.n <= 7, r.choices[0].message.content);
});
