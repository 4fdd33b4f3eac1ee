// anthropic.test.mjs: shimmy driven by the official Anthropic SDK for JavaScript
// (@anthropic-ai/sdk@1.15.0, pinned in package.json / package-lock.json, installed by
// scripts/test-deps.sh).
//
// Starts build/shimmy (SHIMMY_BIN) with stories260K and a second name of the same weights
// rendered with Hermes 2 Pro's tool-use template, then: messages.create and messages.stream
// (text; greedy plain and streamed agree; the final-message helper), a tool call forced with
// tool_choice {type:"tool"} whose input validates against its input_schema, plain and streamed,
// a tool_result turn, max_tokens missing -> 400 in Anthropic's shape, an unknown model -> 404,
// and countTokens equal to the usage of a real request.
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { MODEL, importSdk, modelPath, root, startShimmy } from './server.mjs';

const { default: Anthropic } = await importSdk('@anthropic-ai/sdk');

const TOOLS_MODEL = 'toolstory';
const TOOLS_TEMPLATE = join(root, 'deps/llama.cpp/models/templates/NousResearch-Hermes-2-Pro-Llama-3-8B-tool_use.jinja');

const shimmy = startShimmy({ prefix: 'shimmy-anthropic-',
  args: ['--chat-template-file', `${TOOLS_MODEL}=${TOOLS_TEMPLATE}`],
  prepare: (home) => {
    mkdirSync(join(home, 'models'));
    copyFileSync(modelPath, join(home, 'models', `${TOOLS_MODEL}.gguf`));
  } });
const { it } = shimmy;

const client = () => new Anthropic({ baseURL: shimmy.url, apiKey: 'none', maxRetries: 0,
  timeout: 60000 });

const ask = [{ role: 'user', content: 'Tell me a story.' }];

it('messages.create: a text message with usage', async () => {
  const m = await client().messages.create({ model: MODEL, max_tokens: 16, temperature: 0,
    messages: ask });
  assert.equal(m.type, 'message');
  assert.equal(m.role, 'assistant');
  assert.match(m.id, /^msg_/);
  assert.equal(m.model, MODEL);
  assert.equal(m.content.length, 1);
  assert.equal(m.content[0].type, 'text');
  assert.ok(m.content[0].text.length > 0);
  assert.equal(m.stop_reason, 'max_tokens');
  assert.equal(m.stop_sequence, null);
  assert.equal(m.usage.output_tokens, 16);
  assert.ok(m.usage.input_tokens + m.usage.cache_read_input_tokens > 0);
});

it('stop_sequences: the answer ends before the sequence, stop_reason stop_sequence', async () => {
  const plain = await client().messages.create({ model: MODEL, max_tokens: 64, temperature: 0,
    messages: ask });
  const text = plain.content[0].text;
  const word = (text.match(/\b[a-z]{3,}\b/g) || [])[0];
  assert.ok(word, text);
  const params = { model: MODEL, max_tokens: 64, temperature: 0, messages: ask,
    stop_sequences: ['zzqq', word] };
  const m = await client().messages.create(params);
  assert.equal(m.stop_reason, 'stop_sequence');
  assert.equal(m.stop_sequence, word);
  assert.equal(m.content[0].text, text.slice(0, text.indexOf(word)));
  const streamed = await client().messages.stream(params).finalMessage();
  assert.equal(streamed.stop_reason, 'stop_sequence');
  assert.equal(streamed.stop_sequence, word);
});

it('messages.stream: events in order, the same greedy text, finalMessage', async () => {
  const params = { model: MODEL, max_tokens: 20, temperature: 0, messages: ask };
  const plain = await client().messages.create(params);
  const stream = client().messages.stream(params);
  const types = [];
  let text = '';
  stream.on('text', (t) => { text += t; });
  for await (const ev of stream) types.push(ev.type);
  const final = await stream.finalMessage();
  assert.equal(types[0], 'message_start');
  assert.equal(types.at(-1), 'message_stop');
  assert.equal(types.at(-2), 'message_delta');
  assert.ok(types.includes('content_block_start') && types.includes('content_block_stop'));
  assert.equal(text, plain.content[0].text);
  assert.equal(final.content[0].text, plain.content[0].text);
  assert.equal(final.stop_reason, 'max_tokens');
  assert.equal(final.usage.output_tokens, 20);
});

it('messages.create with stream: true yields raw events', async () => {
  const s = await client().messages.create({ model: MODEL, max_tokens: 4, messages: ask,
    stream: true });
  const types = [];
  for await (const ev of s) types.push(ev.type);
  assert.deepEqual([types[0], types.at(-1)], ['message_start', 'message_stop']);
});

// ---- tools ----

const weather = { name: 'get_weather', description: 'the weather',
  input_schema: { type: 'object', properties: { city: { type: 'string', enum: ['Paris', 'Rome'] },
    days: { type: 'integer', minimum: 1, maximum: 7 } }, required: ['city', 'days'],
  additionalProperties: false } };
const toolAsk = [{ role: 'user', content: 'What is the weather in Paris?' }];
const toolParams = { model: TOOLS_MODEL, max_tokens: 200, temperature: 0, messages: toolAsk,
  tools: [weather], tool_choice: { type: 'tool', name: 'get_weather', disable_parallel_tool_use: true } };

function assertWeatherUse(block) {
  assert.equal(block.type, 'tool_use');
  assert.equal(block.name, 'get_weather');
  assert.ok(typeof block.id === 'string' && block.id.length > 0);
  assert.deepEqual(Object.keys(block.input).sort(), ['city', 'days']);
  assert.ok(['Paris', 'Rome'].includes(block.input.city), JSON.stringify(block.input));
  assert.ok(Number.isInteger(block.input.days) && block.input.days >= 1 && block.input.days <= 7);
}

it('tool_choice {type:"tool"}: a tool_use whose input validates, plain and streamed alike', async () => {
  const m = await client().messages.create(toolParams);
  assert.equal(m.stop_reason, 'tool_use');
  const uses = m.content.filter((b) => b.type === 'tool_use');
  assert.equal(uses.length, 1);
  assertWeatherUse(uses[0]);
  const stream = client().messages.stream(toolParams);
  let json = '';
  stream.on('inputJson', (piece) => { json += piece; });
  const final = await stream.finalMessage();
  assert.equal(final.stop_reason, 'tool_use');
  const use = final.content.find((b) => b.type === 'tool_use');
  assertWeatherUse(use);
  assert.deepEqual(use.input, uses[0].input);
  assert.deepEqual(JSON.parse(json), uses[0].input);
});

it('a tool_result turn continues the conversation', async () => {
  const first = await client().messages.create(toolParams);
  const use = first.content.find((b) => b.type === 'tool_use');
  const m = await client().messages.create({ model: TOOLS_MODEL, max_tokens: 8, temperature: 0,
    tools: [weather], messages: [...toolAsk, { role: 'assistant', content: first.content },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: use.id,
        content: [{ type: 'text', text: 'sunny, 24 C' }] }] }] });
  assert.equal(m.role, 'assistant');
  assert.ok(m.usage.input_tokens + m.usage.cache_read_input_tokens >
    first.usage.input_tokens + first.usage.cache_read_input_tokens);
});

// ---- counting and errors ----

it('countTokens equals the prompt of a real request, tools included', async () => {
  const { input_tokens: n } = await client().messages.countTokens({ model: TOOLS_MODEL,
    messages: toolAsk, tools: [weather] });
  const m = await client().messages.create({ model: TOOLS_MODEL, max_tokens: 1, messages: toolAsk,
    tools: [weather] });
  assert.equal(n, m.usage.input_tokens + m.usage.cache_read_input_tokens);
  const { input_tokens: bare } = await client().messages.countTokens({ model: TOOLS_MODEL,
    messages: toolAsk });
  assert.ok(bare < n, `tools add tokens: ${bare} vs ${n}`);
});

it('errors come back as the SDK\'s error classes in Anthropic\'s shape', async () => {
  await assert.rejects(client().messages.create({ model: MODEL, messages: ask }),
    (e) => e instanceof Anthropic.BadRequestError && e.status === 400 &&
      e.error?.type === 'error' && e.error?.error?.type === 'invalid_request_error' &&
      /max_tokens: Field required/.test(e.message));
  await assert.rejects(client().messages.create({ model: 'no-such-model', max_tokens: 4,
    messages: ask }),
  (e) => e instanceof Anthropic.NotFoundError && e.error?.error?.type === 'not_found_error');
  await assert.rejects(client().messages.create({ model: MODEL, max_tokens: 4, messages: ask,
    tools: [weather] }),
  (e) => e instanceof Anthropic.BadRequestError && /does not support tools/.test(e.message));
});
