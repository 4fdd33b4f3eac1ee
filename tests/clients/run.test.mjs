// run.test.mjs: `shimmy run` in a real terminal (Debian's tmux): against a running server, the
// greedy golden answer after /set parameter, a `"""` multi-line message, Ctrl-C in the middle of
// a long answer (the prompt comes back and /health shows the slot freed), /show info, /bye; and
// one answer from a pipe, from the server and loaded in the process itself. The model's chat
// template is the bare messages (raw.jinja), so an answer is llama.cpp's golden continuation.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import { MODEL, bin, modelPath, root, startShimmy } from './server.mjs';

const DEADLINE_MS = 20000;
const golden = readFileSync(join(root, 'tests/integration/golden/stories260K.jsonl'), 'utf8')
  .split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l))
  .find((g) => g.prompt === 'Once upon a time' && g.max_tokens === 64);
const TEMPLATE = '{% for m in messages %}{{ m.content }}{% endfor %}';
const tmp = mkdtempSync(join(tmpdir(), 'shimmy-run-'));
const rawPath = join(tmp, 'raw.jinja');
writeFileSync(rawPath, TEMPLATE);
const shimmy = startShimmy({ prefix: 'shimmy-run-', args: ['--ctx', '32768', '--parallel', '1',
  '--chat-template-file', `${MODEL}=${rawPath}`] });

const SOCKET = `shimmy-run-test-${process.pid}`;
const tmux = (...args) => execFileSync('tmux', ['-L', SOCKET, ...args], { encoding: 'utf8' });
after(() => { try { tmux('kill-server'); } catch { /* none left */ } });

const pane = () => tmux('capture-pane', '-p', '-J', '-S', '-200', '-t', 'chat');
const keys = (...k) => tmux('send-keys', '-t', 'chat', ...k);
async function until(what, pred) {
  const end = Date.now() + DEADLINE_MS;
  for (;;) {
    const text = pane();
    if (pred(text)) return text;
    if (Date.now() > end) assert.fail(`${what}: not seen within ${DEADLINE_MS} ms; the pane:\n${text}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
const prompts = (text) => (text.match(/^>>> /gm) ?? []).length;
const health = async () => (await (await fetch(`${shimmy.url}/health`)).json()).models[0];

shimmy.it('interactive: /set parameter, golden answer, """, Ctrl-C frees the slot, /bye', async () => {
  tmux('new-session', '-d', '-s', 'chat', '-x', '220', '-y', '50',
    `${bin} run ${MODEL} --server 127.0.0.1:${shimmy.port}; echo EXITED:$?; sleep 60`);
  await until('the greeting', (t) => /Chatting with stories260k at http:\/\/127\.0\.0\.1/.test(t) && prompts(t) === 1);
  keys('/set parameter temperature 0', 'Enter');
  await until('the answer to /set', (t) => t.includes("Set parameter 'temperature' to '0'."));
  keys('/set parameter num_predict 64', 'Enter');
  await until('the second prompt', (t) => prompts(t) === 3);
  keys('Once upon a time', 'Enter');
  let text = await until('the golden answer', (t) => prompts(t) === 4);
  assert.ok(text.includes(`>>> Once upon a time\n${golden.text}\n>>> `), text);
  keys('/clear', 'Enter', '"""', 'Enter', 'Once upon a time"""', 'Enter');
  text = await until('the multi-line answer', (t) => prompts(t) === 6);
  assert.ok(text.includes(`... Once upon a time"""\n${golden.text}\n>>> `), text);
  keys('/set parameter num_predict 30000', 'Enter', '/set parameter temperature 0.8', 'Enter',
    'Once upon a time', 'Enter');
  await until('a long answer streaming', (t) => prompts(t) === 8 && t.split('Once upon a time').pop().length > 300);
  assert.equal((await health()).active, 1);
  keys('C-c');
  text = await until('the prompt after Ctrl-C', (t) => prompts(t) === 9);
  assert.match(text, /\(stopped\)\n>>> $/m);
  // The client hangs up; the server notices at its next write or poll (milliseconds), not
  // before the client prints its prompt: wait for it, with a deadline.
  let h = await health();
  for (const deadline = Date.now() + 5000; h.active !== 0 && Date.now() < deadline;) {
    await new Promise((r) => setTimeout(r, 20));
    h = await health();
  }
  assert.equal(h.active, 0, 'the slot is still busy 5 s after Ctrl-C');
  keys('/show info', 'Enter');
  text = await until('/show info', (t) => prompts(t) === 10);
  assert.match(text, /model\s+stories260k/);
  assert.match(text, /parameters\s+\{"temperature":0\.8,"max_tokens":30000\}/);
  keys('/bye', 'Enter');
  await until('the exit', (t) => t.includes('EXITED:0'));
});

function oneShot(args, input) {
  const r = spawnSync(bin, ['run', MODEL, ...args], { input, encoding: 'utf8', timeout: 60000 });
  assert.equal(r.status, 0, `exit ${r.status}: ${r.stderr}`);
  return r.stdout;
}

shimmy.it('one answer from a pipe: from the server, and loaded in the process', async () => {
  const fromServer = oneShot(['--server', `127.0.0.1:${shimmy.port}`, '--temperature', '0',
    '--max-tokens', '64'], 'Once upon a time\n');
  assert.equal(fromServer, `${golden.text}\n`);
  assert.ok(!fromServer.includes('\x1b'), 'colour on a pipe');
  const here = oneShot(['--server', '127.0.0.1:1', '--model', modelPath, '--chat-template-file',
    `${MODEL}=${rawPath}`, '--temperature', '0', '--max-tokens', '64'], 'Once upon a time\n');
  assert.equal(here, `${golden.text}\n`);
  const words = oneShot(['Once', 'upon', 'a', 'time', '--server', `127.0.0.1:${shimmy.port}`,
    '--temperature', '0', '--max-tokens', '64'], '');
  assert.equal(words, `${golden.text}\n`);
  const bad = spawnSync(bin, ['run', 'nosuchmodel', 'hi', '--server', `127.0.0.1:${shimmy.port}`],
    { encoding: 'utf8', timeout: 60000 });
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /Error: .*nosuchmodel/);
});
