// vision.test.mjs: images sent by the official clients, the openai SDK (openai@6.30.1: a chat
// content part image_url with a data: URI) and the Ollama client (ollama@0.6.4: `images` on
// chat messages and on generate, as base64 strings and as bytes), to the generated vision
// fixture (make fixtures: tools/gen_model + tools/gen_vision). Each greedy answer must be
// llama.cpp's own (llama-mtmd-cli on the same files: tests/integration/golden/vision.jsonl).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { importSdk, root, startShimmy, tools } from './server.mjs';

const { default: OpenAI } = await importSdk('openai');
const { Ollama } = await importSdk('ollama');

const fixtures = join(dirname(tools), 'fixtures');
if (!existsSync(join(fixtures, 'vision-mmproj.gguf')))
  execFileSync(join(root, 'tools/fixtures.sh'), [dirname(tools)], { stdio: 'ignore' });
const golden = readFileSync(join(root, 'tests/integration/golden/vision.jsonl'), 'utf8')
  .trim().split('\n').map((l) => JSON.parse(l));
const image = (name) => readFileSync(join(root, 'tests/data/vision', name));
const MODEL = 'vision-model';

const shimmy = startShimmy({ prefix: 'shimmy-vision-', args: ['--model',
  join(fixtures, 'vision-model.gguf'), '--mmproj', `vision-model=${join(fixtures, 'vision-mmproj.gguf')}`] });
const { it } = shimmy;
const show = (label, v) => console.log(`${label}: ${JSON.stringify(v)}`);

it('openai: an image_url data: URI part and a text part', async () => {
  const openai = new OpenAI({ baseURL: `${shimmy.url}/v1`, apiKey: 'none', maxRetries: 0 });
  for (const g of golden) {
    const mime = g.image.endsWith('.png') ? 'image/png' : g.image.endsWith('.jpg') ? 'image/jpeg'
      : g.image.endsWith('.gif') ? 'image/gif' : 'image/bmp';
    const r = await openai.chat.completions.create({ model: MODEL, temperature: 0,
      max_tokens: g.max_tokens, messages: [{ role: 'user', content: [
        { type: 'image_url', image_url: { url: `data:${mime};base64,${image(g.image).toString('base64')}` } },
        { type: 'text', text: g.prompt }] }] });
    show(`openai.${g.image}`, r.choices[0].message.content);
    assert.equal(r.choices[0].message.content, g.text);
    assert.equal(r.usage.completion_tokens, g.max_tokens);
  }
});

it('ollama: images on chat (base64) and generate (bytes)', async () => {
  const ollama = new Ollama({ host: shimmy.url });
  const g = golden[0];
  const options = { temperature: 0, num_predict: g.max_tokens };
  const c = await ollama.chat({ model: MODEL, options, messages: [{ role: 'user',
    content: g.prompt, images: [image(g.image).toString('base64')] }] });
  show('ollama.chat', c.message.content);
  assert.equal(c.message.content, g.text);
  const r = await ollama.generate({ model: MODEL, options, prompt: g.prompt,
    images: [new Uint8Array(image(g.image))] });
  show('ollama.generate', r.response);
  assert.equal(r.response, g.text);
  await assert.rejects(ollama.generate({ model: MODEL, prompt: 'x', images: ['aGk='] }),
    (e) => e.status_code === 400 && /not a PNG, JPEG, WebP, GIF or BMP image/.test(e.error));
});
