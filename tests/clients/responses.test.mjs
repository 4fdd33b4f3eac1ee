// responses.test.mjs: shimmy's POST /v1/responses driven by the official OpenAI SDK for
// JavaScript (openai@6.30.1, pinned in package.json / package-lock.json).
//
// Starts build/shimmy (SHIMMY_BIN) with stories260K and a second name of the same weights
// rendered with Hermes 2 Pro's tool-use template, then: responses.create plain and with
// stream: true (greedy texts agree; every event carries its sequence_number in order), the
// responses.stream helper's finalResponse, max_output_tokens -> status incomplete, a function
// call forced with tool_choice required (arguments valid for the schema), plain and streamed, a
// function_call_output turn, text.format json_schema, and errors.
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { MODEL, importSdk, modelPath, root, startShimmy } from './server.mjs';

const { default: OpenAI } = await importSdk('openai');

const TOOLS_MODEL = 'toolstory';
const TOOLS_TEMPLATE = join(root, 'deps/llama.cpp/models/templates/NousResearch-Hermes-2-Pro-Llama-3-8B-tool_use.jinja');

const shimmy = startShimmy({ prefix: 'shimmy-responses-',
  args: ['--chat-template-file', `${TOOLS_MODEL}=${TOOLS_TEMPLATE}`],
  prepare: (home) => {
    mkdirSync(join(home, 'models'));
    copyFileSync(modelPath, join(home, 'models', `${TOOLS_MODEL}.gguf`));
  } });
const { it } = shimmy;

const client = () => new OpenAI({ baseURL: `${shimmy.url}/v1`, apiKey: 'none', maxRetries: 0,
  timeout: 60000 });

const params = { model: MODEL, input: 'Tell me a story.', instructions: 'You tell stories.',
  temperature: 0, max_output_tokens: 20 };

it('responses.create: plain and streamed agree; incomplete at max_output_tokens', async () => {
  const r = await client().responses.create(params);
  assert.equal(r.object, 'response');
  assert.match(r.id, /^resp_/);
  assert.equal(r.status, 'incomplete');
  assert.deepEqual(r.incomplete_details, { reason: 'max_output_tokens' });
  assert.equal(r.output.length, 1);
  assert.equal(r.output[0].type, 'message');
  assert.equal(r.output[0].role, 'assistant');
  assert.equal(r.output[0].content[0].type, 'output_text');
  assert.ok(r.output_text.length > 0);
  assert.equal(r.output_text, r.output[0].content[0].text);
  assert.equal(r.usage.output_tokens, 20);
  assert.equal(r.usage.total_tokens, r.usage.input_tokens + 20);

  const stream = await client().responses.create({ ...params, stream: true });
  const types = [];
  let text = '';
  let last = null;
  for await (const ev of stream) {
    types.push(ev.type);
    assert.equal(ev.sequence_number, types.length - 1);
    if (ev.type === 'response.output_text.delta') text += ev.delta;
    last = ev;
  }
  assert.deepEqual(types.slice(0, 4), ['response.created', 'response.in_progress',
    'response.output_item.added', 'response.content_part.added']);
  assert.deepEqual(types.slice(-4), ['response.output_text.done', 'response.content_part.done',
    'response.output_item.done', 'response.incomplete']);
  assert.equal(text, r.output_text);
  assert.equal(last.response.output[0].content[0].text, text);
  assert.equal(last.response.usage.output_tokens, 20);
});

// A bounded schema makes the answer end by itself: status completed (the helper only takes the
// final response from response.completed).
const numberFormat = { format: { type: 'json_schema', name: 'n', strict: true,
  schema: { type: 'object', properties: { n: { type: 'integer', minimum: 3, maximum: 7 } },
    required: ['n'], additionalProperties: false } } };

it('responses.stream helper: finalResponse completed', async () => {
  const stream = client().responses.stream({ model: MODEL, input: [{ role: 'user',
    content: [{ type: 'input_text', text: 'Pick a number' }] }], temperature: 0,
  max_output_tokens: 60, text: numberFormat });
  let text = '';
  stream.on('response.output_text.delta', (ev) => { text += ev.delta; });
  const final = await stream.finalResponse();
  assert.equal(final.status, 'completed');
  assert.equal(final.incomplete_details, null);
  assert.equal(final.output_text, text);
  assert.ok(Number.isInteger(JSON.parse(text).n), text);
});

// ---- tools ----

const weather = { type: 'function', name: 'get_weather', description: 'the weather', strict: true,
  parameters: { type: 'object', properties: { city: { type: 'string', enum: ['Paris', 'Rome'] },
    days: { type: 'integer', minimum: 1, maximum: 7 } }, required: ['city', 'days'],
  additionalProperties: false } };
const toolParams = { model: TOOLS_MODEL, input: 'What is the weather in Paris?', tools: [weather],
  tool_choice: 'required', parallel_tool_calls: false, temperature: 0, max_output_tokens: 200 };

function assertWeatherCall(item) {
  assert.equal(item.type, 'function_call');
  assert.equal(item.name, 'get_weather');
  assert.ok(typeof item.call_id === 'string' && item.call_id.length > 0);
  const v = JSON.parse(item.arguments);
  assert.deepEqual(Object.keys(v).sort(), ['city', 'days']);
  assert.ok(['Paris', 'Rome'].includes(v.city), item.arguments);
  assert.ok(Number.isInteger(v.days) && v.days >= 1 && v.days <= 7, item.arguments);
}

it('tool_choice required: a function_call whose arguments validate, plain and streamed', async () => {
  const r = await client().responses.create(toolParams);
  assert.equal(r.status, 'completed');
  const calls = r.output.filter((o) => o.type === 'function_call');
  assert.equal(calls.length, 1);
  assertWeatherCall(calls[0]);

  const stream = await client().responses.create({ ...toolParams, stream: true });
  let args = '';
  let done = null;
  let final = null;
  for await (const ev of stream) {
    if (ev.type === 'response.function_call_arguments.delta') args += ev.delta;
    if (ev.type === 'response.function_call_arguments.done') done = ev.arguments;
    if (ev.type === 'response.completed') final = ev.response;
  }
  assert.equal(args, calls[0].arguments);
  assert.equal(done, args);
  assertWeatherCall(final.output.find((o) => o.type === 'function_call'));
});

it('a function_call_output turn continues the conversation', async () => {
  const first = await client().responses.create(toolParams);
  const call = first.output.find((o) => o.type === 'function_call');
  const r = await client().responses.create({ model: TOOLS_MODEL, tools: [weather], temperature: 0,
    max_output_tokens: 8, input: [{ role: 'user', content: 'What is the weather in Paris?' },
      { type: 'function_call', call_id: call.call_id, name: call.name, arguments: call.arguments },
      { type: 'function_call_output', call_id: call.call_id, output: '{"sky":"sunny"}' }] });
  assert.ok(['completed', 'incomplete'].includes(r.status));
  assert.ok(r.usage.input_tokens > first.usage.input_tokens);
});

it('text.format json_schema constrains the answer', async () => {
  const r = await client().responses.create({ model: MODEL, input: 'Pick a number', temperature: 0,
    max_output_tokens: 60, text: numberFormat });
  assert.equal(r.status, 'completed');
  const v = JSON.parse(r.output_text);
  assert.ok(Number.isInteger(v.n) && v.n >= 3 && v.n <= 7, r.output_text);
});

it('store: retrieve, previous_response_id continues, delete', async () => {
  const first = await client().responses.create({ model: MODEL, input: 'Tell me about Lily.',
    temperature: 0, max_output_tokens: 8 });
  const got = await client().responses.retrieve(first.id);
  assert.equal(got.id, first.id);
  assert.equal(got.output_text, first.output_text);
  const second = await client().responses.create({ model: MODEL, input: 'And then?',
    previous_response_id: first.id, temperature: 0, max_output_tokens: 8 });
  // the second prompt holds the first turn (its question and answer) before the new input
  assert.ok(second.usage.input_tokens + (second.usage.input_tokens_details?.cached_tokens ?? 0) >
    first.usage.input_tokens + first.usage.output_tokens, JSON.stringify([first.usage, second.usage]));
  const del = await client().responses.delete(first.id);
  assert.equal(del.id, first.id);
  assert.equal(del.deleted, true);
  await assert.rejects(client().responses.retrieve(first.id), (e) => e.status === 404);
  await assert.rejects(client().responses.create({ model: MODEL, input: 'x',
    previous_response_id: first.id, max_output_tokens: 4 }), (e) => e.status === 404);
});

it('errors come back as the SDK\'s error classes', async () => {
  await assert.rejects(client().responses.create({ model: 'no-such-model', input: 'hi' }),
    (e) => e instanceof OpenAI.NotFoundError && e.code === 'model_not_found');
  await assert.rejects(client().responses.create({ model: MODEL, input: 'hi', temperature: 5 }),
    (e) => e instanceof OpenAI.BadRequestError && e.param === 'temperature');
  await assert.rejects(client().responses.create({ model: MODEL, input: 'hi',
    tools: [{ type: 'web_search' }] }),
  (e) => e instanceof OpenAI.BadRequestError && e.param === 'tools[0]');
  await assert.rejects(client().responses.create({ model: MODEL, input: 'hi', tools: [weather] }),
    (e) => e instanceof OpenAI.BadRequestError && e.param === 'tools');
});
