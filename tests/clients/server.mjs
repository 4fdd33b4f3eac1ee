// server.mjs: what the client tests share. The paths (from ctest's environment, else the default
// build layout), the SDK import with a hint when it is missing, and startShimmy(): build/shimmy
// started on a free loopback port with stories260K before the tests and stopped after them, its
// output printed when a test fails.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const here = dirname(fileURLToPath(import.meta.url));
export const root = process.env.SHIMMY_SOURCE_DIR ?? resolve(here, '../..');
export const bin = process.env.SHIMMY_BIN ?? join(root, 'build/shimmy');
export const tools = process.env.SHIMMY_TOOLS_DIR ?? join(root, 'build/tools');
export const models = process.env.SHIMMY_TEST_MODELS ?? resolve(root, '../shared/models');
export const modelPath = join(models, 'stories260K.gguf');
export const MODEL = 'stories260k';
const START_DEADLINE_MS = 30000;

// The npm package `name` (pinned in package.json), or an error that says how to install it.
export async function importSdk(name) {
  try {
    return await import(name);
  } catch (e) {
    throw new Error(`the ${name} package is not installed in ${here}: run scripts/test-deps.sh (${e.message})`);
  }
}

function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Registers before() and after() hooks that run
//   shimmy serve --bind 127.0.0.1:PORT --model stories260K.gguf --threads 1 ...args
// in a fresh temporary folder (named `${prefix}XXXXXX`, also its HOME; prepare(home) may fill it
// first), with env added to the environment; up to 3 tries when it exits during start-up. Returns
// { url, port, it }: url and port once started, and it(name, fn), a test whose failure also
// prints the server's output (in after()).
export function startShimmy({ prefix, args = [], env = {}, prepare = null }) {
  let server = null; // { proc, port, output, exited }
  let home = null;
  let failed = false;

  async function startOnce() {
    const port = await freePort();
    const proc = spawn(bin, ['serve', '--bind', `127.0.0.1:${port}`, '--model', modelPath,
      '--threads', '1', ...args], { cwd: home, env: { ...process.env, HOME: home, ...env },
      stdio: ['ignore', 'pipe', 'pipe'] });
    const s = { proc, port, output: '', exited: false };
    proc.stdout.on('data', (d) => { s.output += d; });
    proc.stderr.on('data', (d) => { s.output += d; });
    proc.on('exit', () => { s.exited = true; });
    const end = Date.now() + START_DEADLINE_MS;
    while (Date.now() < end && !s.exited) {
      try {
        const r = await fetch(`http://127.0.0.1:${port}/health`, { signal: AbortSignal.timeout(1000) });
        if (r.status === 200) return s;
      } catch { /* not up yet */ }
      await sleep(50);
    }
    if (!s.exited) {
      proc.kill('SIGKILL');
      throw new Error(`shimmy did not answer GET /health within ${START_DEADLINE_MS} ms:\n${s.output}`);
    }
    return s;
  }

  before(async () => {
    assert.ok(existsSync(bin), `shimmy binary missing: ${bin} (set SHIMMY_BIN)`);
    assert.ok(existsSync(modelPath), `test model missing: ${modelPath} (set SHIMMY_TEST_MODELS)`);
    home = mkdtempSync(join(tmpdir(), prefix));
    if (prepare) prepare(home);
    for (let attempt = 1; attempt <= 3; attempt++) {
      const s = await startOnce();
      if (!s.exited) { server = s; return; }
      console.error(`shimmy exited during start-up (attempt ${attempt}, port ${s.port}):\n${s.output}`);
    }
    throw new Error('shimmy failed to start 3 times');
  });

  after(async () => {
    if (server && !server.exited) {
      server.proc.kill('SIGTERM');
      const end = Date.now() + 10000;
      while (!server.exited && Date.now() < end) await sleep(20);
      if (!server.exited) server.proc.kill('SIGKILL');
    }
    if (failed && server) console.error(`---- shimmy output ----\n${server.output}---- end ----`);
    if (home) rmSync(home, { recursive: true, force: true });
  });

  return {
    get port() { return server.port; },
    get url() { return `http://127.0.0.1:${server.port}`; },
    it(name, fn) {
      test(name, async (t) => {
        try {
          await fn(t);
        } catch (e) {
          failed = true;
          throw e;
        }
      });
    },
  };
}
