// spec.test.mjs: speculative decoding seen by clients (docs/SPECULATIVE.md). A server whose model
// drafts for itself (--model-draft stories260K.gguf) streams the greedy golden text over the
// WebSocket (ws@8.23.0) and the OpenAI SDK (openai@6.30.1) exactly as a server without drafts
// does, and the WebSocket's final message counts the request's drafted and kept tokens
// (timings.draft_n, timings.draft_n_accepted, llama-server's names).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { MODEL, importSdk, modelPath, root, startShimmy } from './server.mjs';

const { default: WebSocket } = await importSdk('ws');
const { default: OpenAI } = await importSdk('openai');

const DEADLINE_MS = 20000;
const golden = readFileSync(join(root, 'tests/integration/golden/stories260K.jsonl'), 'utf8')
  .split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l))
  .find((g) => g.prompt === 'Once upon a time' && g.max_tokens === 64);
const shimmy = startShimmy({ prefix: 'shimmy-spec-',
  args: ['--parallel', '2', '--model-draft', modelPath, '--draft-max', '4'] });

// The messages of one /ws/generate request, up to and with the final one.
function wsGenerate(body) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${shimmy.port}/ws/generate`);
    const msgs = [];
    const timer = setTimeout(() => { ws.terminate(); reject(new Error(`no answer within ${DEADLINE_MS} ms`)); }, DEADLINE_MS);
    ws.on('error', reject);
    ws.on('open', () => ws.send(JSON.stringify(body)));
    ws.on('message', (m) => {
      const msg = JSON.parse(m.toString());
      msgs.push(msg);
      if (msg.type === 'done' || msg.type === 'error') {
        clearTimeout(timer);
        ws.close();
        resolve(msgs);
      }
    });
  });
}

shimmy.it('the WebSocket streams the golden text and counts the drafts in its timings', async () => {
  const msgs = await wsGenerate({ model: MODEL, prompt: 'Once upon a time', raw: true,
    options: { temperature: 0, num_predict: 64, repeat_penalty: 1 } });
  const last = msgs.at(-1);
  assert.equal(last.type, 'done', JSON.stringify(last));
  const text = msgs.filter((m) => m.type === 'token').map((m) => m.content ?? '').join('');
  assert.equal(text, golden.text);
  assert.ok(last.timings.draft_n > 0, JSON.stringify(last.timings));
  assert.ok(last.timings.draft_n_accepted > 0, JSON.stringify(last.timings));
  assert.ok(last.timings.draft_n_accepted <= last.timings.draft_n);
});

shimmy.it('the OpenAI SDK streams the golden text', async () => {
  const client = new OpenAI({ baseURL: `${shimmy.url}/v1`, apiKey: 'none' });
  const stream = await client.completions.create({ model: MODEL, prompt: 'Once upon a time',
    max_tokens: 64, temperature: 0, stream: true });
  let text = '';
  for await (const chunk of stream) text += chunk.choices[0]?.text ?? '';
  assert.equal(text, golden.text);
});
