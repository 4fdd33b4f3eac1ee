// pull.test.mjs: POST /api/pull and DELETE /api/delete read by the official Ollama client for
// JavaScript (ollama@0.6.4): pull with stream: true (the NDJSON progress objects status, digest,
// total, completed) from a fake Ollama registry and a fake Hugging Face hub
// (tests/integration/fake_hub.py, started here on its own port, the slow model served at
// 600 kB/s so that progress shows), the model served at once (list, generate), an error in the
// stream (a gated repository), pull with stream: false, and delete.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { after } from 'node:test';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { importSdk, models, root, startShimmy, tools } from './server.mjs';

const { Ollama } = await importSdk('ollama');

// The fake hub, before shimmy starts (shimmy reads HF_ENDPOINT from its environment).
const hubDir = mkdtempSync(join(tmpdir(), 'shimmy-hub-'));
const portFile = join(hubDir, 'port');
const hub = spawn('python3', [join(root, 'tests/integration/fake_hub.py'), '--models', models,
  '--tools', tools, '--work', join(hubDir, 'work'), '--port-file', portFile, '--log',
  join(hubDir, 'log'), '--rate', '600000'], { stdio: ['ignore', 'inherit', 'inherit'] });
const end = Date.now() + 30000;
while (!existsSync(portFile) && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
assert.ok(existsSync(portFile), 'the fake hub did not start within 30 s');
const hubPort = Number(readFileSync(portFile, 'utf8'));
after(() => { hub.kill('SIGTERM'); rmSync(hubDir, { recursive: true, force: true }); });

const shimmy = startShimmy({ prefix: 'shimmy-pull-',
  env: { HF_ENDPOINT: `http://127.0.0.1:${hubPort}`, HF_HOME: '', HF_HUB_CACHE: '', HF_TOKEN: '',
    OLLAMA_MODELS: '', XDG_DATA_HOME: '' } });
const { it } = shimmy;
const client = () => new Ollama({ host: shimmy.url });
const SHA = 'sha256:270cba1bd5109f42d03350f60406024560464db173c0e387d91f0426d3bd256d';
const slow = `127.0.0.1:${hubPort}/library/slow:latest`;

it('pulls from an Ollama registry with a progress stream (pull, stream: true)', async () => {
  const parts = [];
  for await (const p of await client().pull({ model: slow, insecure: true, stream: true })) parts.push(p);
  console.log(`pull: ${parts.length} progress objects; first ${JSON.stringify(parts.slice(0, 3))}; last ${JSON.stringify(parts.slice(-3))}`);
  const statuses = parts.map((p) => p.status);
  assert.equal(statuses[0], 'pulling manifest');
  assert.equal(statuses.at(-1), 'success');
  for (const s of ['verifying sha256 digest', 'writing manifest', 'pulling 270cba1bd510'])
    assert.ok(statuses.includes(s), `${s} missing from ${statuses}`);
  const model = parts.filter((p) => p.digest === SHA && p.status === 'pulling 270cba1bd510');
  assert.ok(model.length >= 3, `few progress objects for the model blob: ${JSON.stringify(model)}`);
  for (const p of model) assert.equal(p.total, 1185376);
  for (let i = 1; i < model.length; i++) assert.ok(model[i].completed >= model[i - 1].completed);
  assert.ok(model[0].completed < 1185376);
  assert.equal(model.at(-1).completed, 1185376);
});

it('serves the pulled model at once (list, generate)', async () => {
  const names = (await client().list()).models.map((m) => m.name);
  assert.ok(names.includes(slow), `${slow} missing from ${names}`);
  const r = await client().generate({ model: slow, prompt: 'Once upon a time',
    options: { temperature: 0, num_predict: 8 } });
  console.log(`generate: ${JSON.stringify(r.response)}`);
  assert.ok(r.response.length > 0);
});

it('pulls from a Hugging Face hub by hf.co reference (stream: true and false)', async () => {
  const parts = [];
  for await (const p of await client().pull({ model: 'hf.co/test/Stories-GGUF:Q8_0', stream: true })) parts.push(p);
  const statuses = parts.map((p) => p.status);
  console.log(`hf pull: ${JSON.stringify(statuses.filter((s, i) => statuses.indexOf(s) === i))}`);
  assert.ok(statuses.some((s) => s.startsWith('using stories-Q8_0.gguf')));
  assert.equal(statuses.at(-1), 'success');
  const again = await client().pull({ model: 'test/Stories-GGUF/stories-Q4_K_M.gguf', stream: false });
  assert.equal(again.status, 'success');
  const names = (await client().list()).models.map((m) => m.name);
  for (const n of ['test/stories-gguf/stories-q8_0', 'test/stories-gguf/stories-q4_k_m'])
    assert.ok(names.includes(n), `${n} missing from ${names}`);
});

it('ends the stream with an error the client raises (a gated repository)', async () => {
  await assert.rejects(async () => {
    for await (const p of await client().pull({ model: 'hf.co/test/Gated-GGUF', stream: true })) void p;
  }, (e) => { console.log(`error: ${e.message}`); return /gated or private and no token was sent/.test(e.message); });
  await assert.rejects(client().pull({ model: 'hf.co/test/Gated-GGUF', stream: false }),
    (e) => e.status_code === 403 && /gated/.test(e.error));
});

it('deletes what it pulled, and nothing else (delete)', async () => {
  const r = await client().delete({ model: slow });
  assert.equal(r.status, 'success');
  const names = (await client().list()).models.map((m) => m.name);
  assert.ok(!names.includes(slow), `${slow} still listed`);
  await assert.rejects(client().delete({ model: 'stories260k' }),
    (e) => e.status_code === 403 && /not pulled by shimmy/.test(e.error));
  await assert.rejects(client().delete({ model: slow }), (e) => e.status_code === 404);
});
