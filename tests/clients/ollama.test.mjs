// ollama.test.mjs: shimmy driven by the official Ollama client for JavaScript (ollama@0.6.4, pinned
// in package.json / package-lock.json, installed by scripts/test-deps.sh).
//
// Builds fake Hugging Face, Ollama and LM Studio stores in a temporary HOME (tools/fake_stores.sh),
// starts build/shimmy there with stories260K given with --model too, then lists, shows, generates,
// chats (streamed and not), embeds, looks at the loaded models and checks Ollama-style errors;
// then tools and a tool result on toolstory (Hermes 2 Pro's template), /api/show's capabilities,
// `think` and tools refused where the template cannot, and a format with integer bounds.
// Each answer is printed (the report quotes it); the server's output is printed when a test fails.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { MODEL, importSdk, modelPath, models, root, startShimmy, tools } from './server.mjs';

const { Ollama } = await importSdk('ollama');

// toolstory: stories260K again, with Hermes 2 Pro's tool-use template.
const shimmy = startShimmy({ prefix: 'shimmy-ollama-', args: ['--max-loaded', '3',
  '--chat-template-file', `toolstory=${join(root, 'deps/llama.cpp/models/templates/NousResearch-Hermes-2-Pro-Llama-3-8B-tool_use.jinja')}`],
  env: { OLLAMA_MODELS: '', HF_HOME: '', HF_HUB_CACHE: '' },
  prepare: (home) => {
    execFileSync(join(root, 'tools/fake_stores.sh'), [home, models, tools], { stdio: 'ignore' });
    mkdirSync(join(home, 'models'), { recursive: true });
    copyFileSync(modelPath, join(home, 'models', 'toolstory.gguf'));
  } });
const { it } = shimmy;

const client = () => new Ollama({ host: shimmy.url });
const greedy = { temperature: 0, num_predict: 16 };
const show = (label, v) => console.log(`${label}: ${JSON.stringify(v)}`);

it('lists every model of every store (list)', async () => {
  const r = await client().list();
  const names = r.models.map((m) => m.name);
  show('list', names);
  for (const n of [MODEL, 'stories:260k', 'stories:lora', 'someuser/tiny:q8',
    'hf.co/bartowski/Other-GGUF:Q8_0', 'thebloke/stories-260k-gguf/stories260k',
    'org/split-gguf/stories-split', 'lmstudio-community/tiny-gguf/tiny-random-f16',
    'pub/stories-lora-gguf/stories260k']) assert.ok(names.includes(n), `${n} missing from ${names}`);
  const m = r.models.find((x) => x.name === 'stories:260k');
  assert.equal(m.digest, '270cba1bd5109f42d03350f60406024560464db173c0e387d91f0426d3bd256d');
  assert.equal(m.details.family, 'llama');
  assert.equal(m.details.parameter_size, '292.8K');
  assert.equal(m.details.quantization_level, 'F32');
  assert.equal(m.size, 1185376);
});

it('shows a model with its Ollama layers (show)', async () => {
  const r = await client().show({ model: 'stories:260k' });
  show('show.template', r.template);
  show('show.parameters', r.parameters);
  // the template in use: the model has no chat template, so chat renders with ChatML
  assert.match(r.template, /<\|im_start\|>/);
  assert.deepEqual(r.capabilities, ['completion']);
  assert.match(r.parameters, /stop/);
  assert.equal(r.model_info['general.architecture'], 'llama');
  assert.equal(r.model_info['llama.context_length'], 2048);
  assert.equal(r.details.format, 'gguf');
});

it('generates, plain and streamed, with the same greedy text (generate)', async () => {
  const prompt = 'Once upon a time';
  const plain = await client().generate({ model: MODEL, prompt, raw: true, options: greedy });
  show('generate', plain);
  assert.equal(plain.done, true);
  assert.equal(plain.done_reason, 'length');
  assert.equal(plain.eval_count, 16);
  assert.ok(plain.prompt_eval_count > 0);
  assert.ok(plain.total_duration > 0 && plain.eval_duration > 0 && plain.prompt_eval_duration > 0);
  assert.ok(plain.response.startsWith(', there was a little girl named Lily'));
  let text = '';
  let last = null;
  let parts = 0;
  for await (const part of await client().generate({ model: MODEL, prompt, raw: true, stream: true,
    options: greedy })) {
    text += part.response;
    parts++;
    last = part;
  }
  show('generate.stream.parts', parts);
  assert.ok(parts >= 2); // text lines (as many as the waits that found text) and the final one
  assert.equal(text, plain.response);
  assert.equal(last.done, true);
  assert.equal(last.eval_count, 16);
});

it('log probabilities in Ollama\'s shape (logprobs, top_logprobs)', async () => {
  // the pinned client passes unknown request fields through; the answer is raw JSON
  const r = await fetch(`${shimmy.url}/api/generate`, { method: 'POST', body: JSON.stringify({
    model: MODEL, prompt: 'Once upon a time', stream: false, logprobs: true, top_logprobs: 2,
    options: { temperature: 0, num_predict: 4 } }) }).then((x) => x.json());
  assert.equal(r.logprobs.length, 4);
  assert.equal(r.logprobs.map((t) => t.token).join(''), r.response);
  for (const t of r.logprobs) {
    assert.ok(t.logprob <= 0);
    assert.equal(t.top_logprobs.length, 2);
    assert.equal(t.top_logprobs[0].token, t.token);
  }
  const bad = await fetch(`${shimmy.url}/api/generate`, { method: 'POST', body: JSON.stringify({
    model: MODEL, prompt: 'x', top_logprobs: 2 }) });
  assert.equal(bad.status, 400);
});

it('chats, plain and streamed (chat)', async () => {
  const messages = [{ role: 'user', content: 'Tell me a story.' }];
  const plain = await client().chat({ model: MODEL, messages, options: greedy });
  show('chat', plain);
  assert.equal(plain.message.role, 'assistant');
  assert.ok(plain.message.content.length > 0);
  assert.equal(plain.done, true);
  let text = '';
  for await (const part of await client().chat({ model: MODEL, messages, stream: true, options: greedy }))
    text += part.message.content;
  assert.equal(text, plain.message.content);
  const stopped = await client().chat({ model: MODEL, messages,
    options: { temperature: 0, num_predict: 64, stop: ['.'] } });
  assert.equal(stopped.done_reason, 'stop');
  assert.ok(!stopped.message.content.includes('.'));
});

it('constrains the output to JSON with format "json"', async () => {
  const r = await client().generate({ model: MODEL, prompt: 'Once upon a time', format: 'json',
    options: { temperature: 0, num_predict: 24 } });
  show('generate.json', r.response);
  assert.ok(r.response.trimStart().startsWith('{'));
});

it('constrains the output to a JSON schema with format {schema}', async () => {
  const format = { type: 'object', properties: { name: { type: 'string' }, age: { type: 'integer' } },
    required: ['name', 'age'] };
  const r = await client().generate({ model: MODEL, prompt: 'Tom is 5 years old. His name is',
    format, options: { temperature: 0, num_predict: 200 } });
  show('generate.schema', r.response);
  assert.equal(r.done_reason, 'stop');
  const v = JSON.parse(r.response);
  assert.deepEqual(Object.keys(v), ['name', 'age']);
  assert.equal(typeof v.name, 'string');
  assert.ok(Number.isInteger(v.age));
  await assert.rejects(client().generate({ model: MODEL, prompt: 'x',
    format: { type: 'foo' } }), /Unrecognized schema/);
});

it('embeds (embed, embeddings)', async () => {
  const r = await client().embed({ model: MODEL, input: ['hello world', 'a cat'] });
  assert.equal(r.embeddings.length, 2);
  assert.equal(r.embeddings[0].length, 64);
  const norm = Math.sqrt(r.embeddings[0].reduce((a, x) => a + x * x, 0));
  show('embed', { n: r.embeddings.length, dim: r.embeddings[0].length, norm });
  assert.ok(Math.abs(norm - 1) < 1e-4);
  const same = await client().embed({ model: MODEL, input: 'hello world' });
  assert.deepEqual(same.embeddings[0], r.embeddings[0]);
  const legacy = await client().embeddings({ model: MODEL, prompt: 'hello world' });
  assert.equal(legacy.embedding.length, 64);
});

it('embeds with dimensions, and reloads for num_ctx (ps shows it)', async () => {
  const r = await client().embed({ model: MODEL, input: 'hello world', dimensions: 16 });
  assert.equal(r.embeddings[0].length, 16);
  const norm = Math.sqrt(r.embeddings[0].reduce((a, x) => a + x * x, 0));
  assert.ok(Math.abs(norm - 1) < 1e-5);
  await client().generate({ model: MODEL, prompt: 'Hi', options: { num_predict: 2, num_ctx: 96 } });
  const ps = await client().ps();
  const m = ps.models.find((x) => x.name === MODEL);
  show('num_ctx', { context_length: m.context_length, dims: r.embeddings[0].length });
  assert.equal(m.context_length, 96);
});

it('lists the loaded models and honours keep_alive (ps)', async () => {
  await client().generate({ model: 'stories:260k', prompt: 'Hi', options: { num_predict: 2 } });
  let ps = await client().ps();
  show('ps', ps.models.map((m) => [m.name, m.expires_at]));
  assert.ok(ps.models.some((m) => m.name === 'stories:260k'));
  await client().generate({ model: 'stories:260k', prompt: '', keep_alive: 0 });
  ps = await client().ps();
  assert.ok(!ps.models.some((m) => m.name === 'stories:260k'));
});

it('answers errors the way Ollama does', async () => {
  await assert.rejects(client().chat({ model: 'nope', messages: [{ role: 'user', content: 'x' }] }),
    (e) => { show('error.not_found', [e.status_code, e.error]); return e.status_code === 404 && /not found/.test(e.error); });
  await assert.rejects(client().push({ model: 'llama3' }),
    (e) => { show('error.push', [e.status_code, e.error]); return e.status_code === 501 && /does not push/.test(e.error); });
  await assert.rejects(client().delete({ model: 'stories:260k' }),
    (e) => { show('error.delete', [e.status_code, e.error]); return e.status_code === 403 && /not pulled by shimmy/.test(e.error); });
  await assert.rejects(client().generate({ model: MODEL, prompt: 'x', images: ['aGk='] }),
    (e) => e.status_code === 400 && /images/.test(e.error));
  const v = await client().version();
  show('version', v);
  assert.match(v.version, /^\d+\.\d+\.\d+/);
});

// ---- tools and thinking ----

const weather = { type: 'function', function: { name: 'get_weather', description: 'the weather',
  parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } } };

it('tools, a tool call in the history and a tool result (chat)', async () => {
  const messages = [{ role: 'user', content: 'What is the weather in Paris?' },
    { role: 'assistant', content: '', tool_calls: [{ function: { name: 'get_weather',
      arguments: { city: 'Paris' } } }] },
    { role: 'tool', tool_name: 'get_weather', content: 'sunny' }];
  const r = await client().chat({ model: 'toolstory', messages, tools: [weather], options: greedy });
  show('chat.tools', r.message);
  assert.equal(r.done, true);
  assert.equal(r.message.role, 'assistant');
  const s = await client().show({ model: 'toolstory' });
  assert.deepEqual(s.capabilities, ['completion', 'tools']);
  assert.match(s.template, /tool_call/);
});

it('tools and think where the template cannot: Ollama\'s 400s', async () => {
  await assert.rejects(client().chat({ model: MODEL, messages: [{ role: 'user', content: 'x' }],
    tools: [weather] }),
  (e) => e.status_code === 400 && e.error === `"${MODEL}" does not support tools`);
  await assert.rejects(client().chat({ model: MODEL, messages: [{ role: 'user', content: 'x' }],
    think: true }),
  (e) => { show('error.think', [e.status_code, e.error]); return e.status_code === 400 && e.error === `"${MODEL}" does not support thinking`; });
  await assert.rejects(client().generate({ model: MODEL, prompt: 'x', think: 'high' }),
    (e) => e.status_code === 400 && /does not support thinking/.test(e.error));
});

it('format with integer bounds', async () => {
  const format = { type: 'object', properties: { n: { type: 'integer', minimum: 3, maximum: 7 } },
    required: ['n'] };
  const r = await client().generate({ model: MODEL, prompt: 'Tom is', format,
    options: { temperature: 0, num_predict: 60 } });
  show('generate.bounded', r.response);
  assert.equal(r.done_reason, 'stop');
  const v = JSON.parse(r.response);
  assert.ok(Number.isInteger(v.n) && v.n >= 3 && v.n <= 7);
});
