// bench.mjs: runs shimmy and llama.cpp's llama-server side by side on the same models and prints
// ratios. Node 20, no npm packages; node:http for streaming timestamps taken as bytes arrive.
//
// Each run starts each server fresh on its own free loopback port with the same slots, per-slot
// context, threads and non-unified KV cache, alternating shimmy, reference, shimmy, reference...
// Every number is the median over the runs (TTFT percentiles under load pool all runs' streams).
// Every request, start and stop is bounded by a timeout; servers are killed on exit or signal.
//
// Usually started by bench/run.sh (make bench), which builds what is missing. Environment:
//   SHIMMY_BIN, REF_BIN                  the two servers (default build/shimmy (run.sh: $BUILD/shimmy),
//                                        deps/reference/build/bin/llama-server)
//   BENCH_MODELS                         ';'-separated GGUF paths (run.sh sets them)
//   BENCH_QUICK=1                        one run, 64 tokens per request (about 3 minutes)
//   BENCH_RUNS, BENCH_MAX_TOKENS         override runs (default 3) and max_tokens (default 128)
//   BENCH_PARALLEL, BENCH_CTX, BENCH_THREADS   slots (8), context per slot (2048), threads (2)
//   BENCH_LONG_TOKENS                    target length of the long prompt (1000)
//   BENCH_WRK_SECONDS                    duration of the wrk /health run (3)
//   SHIMMY_BENCH_EXTRA_ARGS, REF_EXTRA_ARGS   extra server arguments (e.g. -ngl 99 for GPUs)
//   BENCH_OUT_DIR                        results folder (default bench/results)
//   BENCH_LOG_DIR                        server logs (default deps/bench-logs)
//   BENCH_CPU_EXCLUDE                    CPU modules neither server may load (e.g. sapphirerapids:
//                                        run.sh sets it when the reference dies on AMX kernels)
//   BENCH_SESSIONS                       conversation counts of the agent-sessions workload
//                                        ('8,16'; '0' skips it)
//   BENCH_SESSION_TURNS, BENCH_SESSION_SLOTS, BENCH_SESSION_THREADS   turns per conversation
//                                        (8; 4 with BENCH_QUICK), slots (4), threads (1)
//   BENCH_SESSION_USER_TOKENS, BENCH_SESSION_MAX_TOKENS   new user text per turn (60), answer (24)
//   BENCH_SESSION_MODEL                  its model (default: stories260K among BENCH_MODELS)
//   BENCH_ONLY                           'models', 'sessions', 'spec' or 'rpc': that part only, docs untouched
//                                        (rpc: only that part ever; it is not in the full run)
//   BENCH_SPEC=0                         skip the speculative decoding workload (on by default)
//   BENCH_SPEC_N, BENCH_SPEC_M, BENCH_SPEC_TOKENS   its n-gram size (4), draft size (16) and
//                                        max_tokens per rewrite (128)
import { spawn, spawnSync, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const env = process.env;
const QUICK = env.BENCH_QUICK === '1';
const intEnv = (name, def) => {
    const v = env[name];
    if (v === undefined || v === '') return def;
    const n = Number.parseInt(v, 10);
    if (!Number.isFinite(n) || n <= 0 || String(n) !== v.trim()) throw new Error(`${name} must be a positive integer, got '${v}'`);
    return n;
};

const CFG = {
    shimmy: path.resolve(ROOT, env.SHIMMY_BIN || 'build/shimmy'),
    ref: path.resolve(ROOT, env.REF_BIN || 'deps/reference/build/bin/llama-server'),
    models: (env.BENCH_MODELS || '../shared/models/stories260K.gguf').split(';').filter(Boolean).map((m) => path.resolve(ROOT, m)),
    runs: intEnv('BENCH_RUNS', QUICK ? 1 : 3),
    maxTokens: intEnv('BENCH_MAX_TOKENS', QUICK ? 64 : 128),
    parallel: intEnv('BENCH_PARALLEL', 8),
    ctx: intEnv('BENCH_CTX', 2048),
    threads: intEnv('BENCH_THREADS', 2),
    longTokens: intEnv('BENCH_LONG_TOKENS', 1000),
    wrkSeconds: intEnv('BENCH_WRK_SECONDS', QUICK ? 2 : 3),
    concurrency: [4, 8],
    // Agent sessions: conversations of growing turns, more conversations than slots.
    sessions: (env.BENCH_SESSIONS ?? '8,16').split(/[\s,]+/).filter((x) => x !== '' && x !== '0').map((x) => {
        const n = Number.parseInt(x, 10);
        if (!(n > 0) || String(n) !== x) throw new Error(`BENCH_SESSIONS must list positive integers, got '${env.BENCH_SESSIONS}'`);
        return n;
    }),
    sessionTurns: intEnv('BENCH_SESSION_TURNS', QUICK ? 4 : 8),
    sessionSlots: intEnv('BENCH_SESSION_SLOTS', 4),
    sessionThreads: intEnv('BENCH_SESSION_THREADS', 1),
    sessionUserTokens: intEnv('BENCH_SESSION_USER_TOKENS', 60),
    sessionMaxTokens: intEnv('BENCH_SESSION_MAX_TOKENS', 24),
    sessionModel: env.BENCH_SESSION_MODEL || null, // default: stories260K from BENCH_MODELS, else the first
    only: env.BENCH_ONLY || '', // 'models', 'sessions', 'spec' or 'rpc': one part only (docs/BENCHMARKS.md untouched)
    // Speculative decoding: n-gram drafts (ngram-simple, the same flags on both servers) on
    // "rewrite this text" prompts, single stream, with and without.
    specN: intEnv('BENCH_SPEC_N', 4),
    specM: intEnv('BENCH_SPEC_M', 16),
    specTokens: intEnv('BENCH_SPEC_TOKENS', 128),
    shimmyExtra: (env.SHIMMY_BENCH_EXTRA_ARGS || '').split(/\s+/).filter(Boolean),
    refExtra: (env.REF_EXTRA_ARGS || '').split(/\s+/).filter(Boolean),
    cpuExclude: (env.BENCH_CPU_EXCLUDE || '').split(/[\s,]+/).filter(Boolean),
    outDir: path.resolve(ROOT, env.BENCH_OUT_DIR || 'bench/results'),
    logDir: path.resolve(ROOT, env.BENCH_LOG_DIR || 'deps/bench-logs'),
};

if (!['', 'models', 'sessions', 'spec', 'rpc'].includes(CFG.only)) throw new Error(`BENCH_ONLY must be 'models', 'sessions', 'spec' or 'rpc', got '${CFG.only}'`);
CFG.sessionModel = path.resolve(ROOT, CFG.sessionModel
    || CFG.models.find((m) => /stories260K/i.test(path.basename(m))) || CFG.models[0]);
const doModels = CFG.only === '' || CFG.only === 'models';
const doSessions = (CFG.only === '' || CFG.only === 'sessions') && CFG.sessions.length > 0;
const doSpec = CFG.only === 'spec' || (CFG.only === '' && env.BENCH_SPEC !== '0');

// Time limits, milliseconds.
const T = {
    start: 180_000,      // process start -> /health 200 (model load included)
    stop: 15_000,        // SIGTERM -> exit, then SIGKILL
    request: 300_000,    // one completion, whole stream
    health: 2_000,       // one /health probe
    wrk: (CFG.wrkSeconds + 20) * 1000,
};

const SERVERS = ['shimmy', 'llama-server'];

// ---------- small helpers ----------

const now = () => performance.now();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (...a) => console.error(`[bench ${new Date().toISOString().slice(11, 19)}]`, ...a);

function median(xs) {
    const v = xs.filter((x) => typeof x === 'number' && Number.isFinite(x)).sort((a, b) => a - b);
    if (v.length === 0) return null;
    const m = v.length >> 1;
    return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

function percentile(xs, p) { // nearest rank
    const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
    if (v.length === 0) return null;
    return v[Math.min(v.length - 1, Math.max(0, Math.ceil((p / 100) * v.length) - 1))];
}

function freePort() {
    return new Promise((resolve, reject) => {
        const s = net.createServer();
        s.unref();
        s.on('error', reject);
        s.listen(0, '127.0.0.1', () => {
            const { port } = s.address();
            s.close(() => resolve(port));
        });
    });
}

function rssMiB(pid) {
    try {
        const m = /VmRSS:\s+(\d+)\s+kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
        return m ? Number(m[1]) / 1024 : null;
    } catch {
        return null;
    }
}

// GET with a hard deadline; resolves {status, body} or {status: 0, error}.
function httpGet(port, urlPath, timeoutMs) {
    return new Promise((resolve) => {
        const req = http.get({ host: '127.0.0.1', port, path: urlPath, agent: false, timeout: timeoutMs }, (res) => {
            let body = '';
            res.setEncoding('utf8');
            res.on('data', (d) => { body += d; });
            res.on('end', () => resolve({ status: res.statusCode, body }));
            res.on('error', (e) => resolve({ status: 0, error: e.message }));
        });
        req.on('timeout', () => req.destroy(new Error('timeout')));
        req.on('error', (e) => resolve({ status: 0, error: e.message }));
    });
}

// POSTs a streaming completion and timestamps the SSE events as they arrive.
// Returns {ok, error, t0, tFirst, tLast, tEnd, nText, usage, text} (times: performance.now()).
function streamCompletion(port, body, timeoutMs = T.request) {
    return new Promise((resolve) => {
        const payload = JSON.stringify({ ...body, stream: true, stream_options: { include_usage: true } });
        const r = { ok: false, error: null, t0: 0, tFirst: null, tLast: null, tEnd: null, nText: 0, usage: null, text: '' };
        let done = false;
        const finish = (err) => {
            if (done) return;
            done = true;
            clearTimeout(timer);
            r.tEnd = now();
            r.error = err;
            r.ok = !err && r.usage !== null;
            if (!err && r.usage === null) r.error = 'no usage in the stream';
            resolve(r);
        };
        const req = http.request({
            host: '127.0.0.1', port, path: '/v1/completions', method: 'POST', agent: false,
            headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(payload) },
        }, (res) => {
            res.setEncoding('utf8');
            if (res.statusCode !== 200) {
                let b = '';
                res.on('data', (d) => { b += d; });
                res.on('end', () => finish(`HTTP ${res.statusCode}: ${b.slice(0, 300)}`));
                return;
            }
            let pending = '';
            res.on('data', (chunk) => {
                const t = now();
                pending += chunk;
                let i;
                while ((i = pending.indexOf('\n\n')) >= 0) {
                    const ev = pending.slice(0, i);
                    pending = pending.slice(i + 2);
                    for (const line of ev.split('\n')) {
                        if (!line.startsWith('data:')) continue;
                        const data = line.slice(5).trim();
                        if (data === '[DONE]') continue;
                        let j;
                        try { j = JSON.parse(data); } catch { continue; }
                        const txt = j.choices?.[0]?.text ?? '';
                        if (txt.length > 0) {
                            if (r.tFirst === null) r.tFirst = t;
                            r.tLast = t;
                            r.nText++;
                            r.text += txt;
                        }
                        if (j.usage) r.usage = j.usage;
                        if (j.timings) r.timings = j.timings; // llama-server: draft_n, draft_n_accepted
                    }
                }
            });
            res.on('end', () => finish(null));
            res.on('error', (e) => finish(e.message));
        });
        const timer = setTimeout(() => { req.destroy(); finish(`timeout after ${timeoutMs} ms`); }, timeoutMs);
        req.on('error', (e) => finish(e.message));
        req.setNoDelay(true);
        r.t0 = now();
        req.end(payload);
    });
}

// ---------- prompts ----------

// Plain story English: tokenizes sensibly with both the 512-token stories vocabulary and Llama-2's.
const WORDS = ('the little girl boy dog cat tree park ball sun day happy sad big small red blue green '
    + 'house car toy friend mom dad played ran jumped saw liked wanted found said went came looked '
    + 'smiled laughed helped gave took made bird fish flower garden river sky cloud rain box book '
    + 'cake apple water sand hill door window bed night morning').split(' ');

function storyText(seed, nWords) {
    let x = (seed * 2654435761) >>> 0 || 1;
    const rnd = () => { x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; return x; };
    const out = [];
    let sentence = 0;
    for (let i = 0; i < nWords; i++) {
        out.push(WORDS[rnd() % WORDS.length]);
        if (++sentence >= 8 + (rnd() % 6)) { out[out.length - 1] += '.'; sentence = 0; }
    }
    return out.join(' ');
}

let promptSerial = 0;
// A prompt no earlier request of this server process shares more than a token or two with.
function uniquePrompt(tag, nWords) {
    promptSerial++;
    return `${promptSerial * 7919 % 100000} ${tag}. Once upon a time ${storyText(promptSerial + 17 * nWords, nWords)}`;
}

// ---------- servers ----------

const live = new Set(); // child processes to kill on exit

function killAll(signal = 'SIGKILL') {
    for (const p of live) {
        try { process.kill(-p.pid, signal); } catch { /* gone */ }
    }
}
process.on('exit', () => killAll());
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.on(sig, () => { log(`${sig}: stopping servers`); killAll(); process.exit(130); });
}

// opts: {parallel, threads} for workloads that use other settings than the main table's.
function serverArgs(kind, model, port, opts = {}) {
    const P = opts.parallel ?? CFG.parallel, C = CFG.ctx, Tn = opts.threads ?? CFG.threads;
    if (kind === 'shimmy') {
        const a = ['serve', '--bind', `127.0.0.1:${port}`, '--parallel', `${P}`, '--ctx', `${C}`, '--threads', `${Tn}`];
        if (model) a.push('--model', model);
        return [CFG.shimmy, [...a, ...CFG.shimmyExtra, ...(opts.extra || [])], moduleDirs.shimmy ? { SHIMMY_BACKEND_DIR: moduleDirs.shimmy } : {}];
    }
    // llama-server's -c is the total over all slots; --no-kv-unified gives each slot its own
    // C tokens, as shimmy does.
    const a = ['--host', '127.0.0.1', '--port', `${port}`, '-np', `${P}`, '-c', `${C * P}`, '--no-kv-unified',
        '-t', `${Tn}`, '-tb', `${Tn}`, '--temp', '0'];
    if (model) a.push('-m', model);
    return [moduleDirs.ref || CFG.ref, [...a, ...CFG.refExtra, ...(opts.extra || [])], {}];
}

// With BENCH_CPU_EXCLUDE, both servers load their CPU modules from folders without the excluded
// ones (so both pick the same next-best module): shimmy through SHIMMY_BACKEND_DIR, llama-server
// from a copy of its executable (ggml searches the executable's folder) next to links to its
// libraries.
const moduleDirs = {};
function prepareModuleDirs() {
    if (CFG.cpuExclude.length === 0) return;
    const skip = (f) => CFG.cpuExclude.some((x) => f === `libggml-cpu-${x}.so`);
    const base = path.join(ROOT, 'deps/bench-run');
    fs.rmSync(base, { recursive: true, force: true });
    const shimmyLib = path.join(base, 'shimmy-lib');
    const refBin = path.join(base, 'reference-bin');
    fs.mkdirSync(shimmyLib, { recursive: true });
    fs.mkdirSync(refBin, { recursive: true });
    const sLib = path.join(path.dirname(CFG.shimmy), 'lib');
    for (const f of fs.readdirSync(sLib)) if (/^libggml-cpu-/.test(f) && !skip(f)) fs.symlinkSync(path.join(sLib, f), path.join(shimmyLib, f));
    const rDir = path.dirname(CFG.ref);
    for (const f of fs.readdirSync(rDir)) if (/^lib.*\.so/.test(f) && !skip(f)) fs.symlinkSync(path.join(rDir, f), path.join(refBin, f));
    fs.copyFileSync(CFG.ref, path.join(refBin, path.basename(CFG.ref)));
    fs.chmodSync(path.join(refBin, path.basename(CFG.ref)), 0o755);
    moduleDirs.shimmy = shimmyLib;
    moduleDirs.ref = path.join(refBin, path.basename(CFG.ref));
}

let logSerial = 0;
// Starts a server and waits for /health 200. Returns {proc, port, startupMs, rssLoad, log}
// or {error}.
async function startServer(kind, model, tag, opts = {}) {
    const port = await freePort();
    const [bin, args, extraEnv] = serverArgs(kind, model, port, opts);
    fs.mkdirSync(CFG.logDir, { recursive: true });
    const logPath = path.join(CFG.logDir, `${String(++logSerial).padStart(3, '0')}-${kind}-${tag}.log`);
    const fd = fs.openSync(logPath, 'w');
    const cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'shimmy-bench-')); // no ./models to discover
    const childEnv = { ...env, ...extraEnv };
    delete childEnv.SHIMMY_MODEL_PATHS;
    delete childEnv.LLAMA_ARG_MODEL;
    const t0 = now();
    const proc = spawn(bin, args, { cwd, env: childEnv, stdio: ['ignore', fd, fd], detached: true });
    fs.closeSync(fd);
    live.add(proc);
    let exited = null;
    proc.on('exit', (code, sig) => { exited = `exited (${sig || code})`; live.delete(proc); });
    proc.on('error', (e) => { exited = e.message; live.delete(proc); });
    const deadline = t0 + T.start;
    while (now() < deadline) {
        if (exited) break;
        const r = await httpGet(port, '/health', T.health);
        if (r.status === 200) {
            const startupMs = now() - t0;
            return { kind, proc, port, startupMs, rssLoad: rssMiB(proc.pid), logPath, cwd };
        }
        await sleep(r.status === 0 ? 3 : 10);
    }
    const why = exited || `no /health 200 within ${T.start} ms`;
    await stopServer({ proc, cwd });
    const tail = fs.readFileSync(logPath, 'utf8').trim().split('\n').slice(-3).join(' | ');
    return { error: `${why}: ${tail.slice(0, 400)}`, logPath };
}

async function stopServer(s) {
    const p = s.proc;
    if (p && p.exitCode === null && p.signalCode === null) {
        const gone = new Promise((r) => p.once('exit', r));
        try { process.kill(-p.pid, 'SIGTERM'); } catch { /* gone */ }
        const t = await Promise.race([gone.then(() => 'ok'), sleep(T.stop).then(() => 'late')]);
        if (t === 'late') {
            log(`${s.kind} pid ${p.pid} ignored SIGTERM for ${T.stop} ms: SIGKILL`);
            try { process.kill(-p.pid, 'SIGKILL'); } catch { /* gone */ }
            await Promise.race([gone, sleep(5000)]);
        }
    }
    live.delete(p);
    if (s.cwd) fs.rmSync(s.cwd, { recursive: true, force: true });
}

// ---------- measurements ----------

function decodeRate(r) {
    const n = r.usage?.completion_tokens;
    if (!r.ok || !n || n < 2 || r.tLast === null || r.tLast <= r.tFirst) return null;
    return (n - 1) / ((r.tLast - r.tFirst) / 1000);
}

function checked(r, what) {
    if (!r.ok) throw new Error(`${what}: ${r.error}`);
    return r;
}

async function single(s, model, prompt, maxTokens, what) {
    const r = checked(await streamCompletion(s.port, { model, prompt, max_tokens: maxTokens, temperature: 0 }), what);
    const wall = (r.tEnd - r.t0) / 1000;
    return {
        ttft: r.tFirst - r.t0,
        decode: decodeRate(r),
        agg: r.usage.completion_tokens / wall,
        promptTokens: r.usage.prompt_tokens,
        completionTokens: r.usage.completion_tokens,
    };
}

async function concurrent(s, model, n) {
    const t0 = now();
    const rs = await Promise.all(Array.from({ length: n }, (_, i) =>
        streamCompletion(s.port, { model, prompt: uniquePrompt(`stream ${i}`, 24), max_tokens: CFG.maxTokens, temperature: 0 })));
    const t1 = Math.max(...rs.map((r) => r.tEnd));
    rs.forEach((r, i) => checked(r, `concurrent ${n}, stream ${i}`));
    const tokens = rs.reduce((a, r) => a + r.usage.completion_tokens, 0);
    return { agg: tokens / ((t1 - t0) / 1000), ttfts: rs.map((r) => r.tFirst - r.t0), tokens };
}

async function prefixReuse(s, model, longPrompt) {
    checked(await streamCompletion(s.port, { model, prompt: longPrompt, max_tokens: 1, temperature: 0 }), 'prefix: first');
    const r = checked(await streamCompletion(s.port,
        { model, prompt: `${longPrompt} Then the dog ran to the park with a red ball.`, max_tokens: 8, temperature: 0 }), 'prefix: second');
    return {
        ttft: r.tFirst - r.t0,
        cached: r.usage.prompt_tokens_details?.cached_tokens ?? null,
        promptTokens: r.usage.prompt_tokens,
    };
}

function wrkHealth(port) {
    const args = ['-t', '2', '-c', '16', '-d', `${CFG.wrkSeconds}s`, '--timeout', '2s', `http://127.0.0.1:${port}/health`];
    const r = spawnSync('wrk', args, { encoding: 'utf8', timeout: T.wrk, killSignal: 'SIGKILL' });
    if (r.error || r.status !== 0) return { rps: null, note: `wrk failed: ${r.error?.message || r.stderr?.slice(0, 200)}` };
    const m = /Requests\/sec:\s+([\d.]+)/.exec(r.stdout);
    const bad = /Non-2xx or 3xx responses:\s+(\d+)/.exec(r.stdout);
    const errs = /Socket errors:[^\n]*/.exec(r.stdout);
    return {
        rps: m ? Number(m[1]) : null,
        note: [bad ? `${bad[1]} non-2xx` : '', errs ? errs[0] : ''].filter(Boolean).join(', '),
    };
}

// The long prompt: a story of about CFG.longTokens tokens for this model's tokenizer, sized
// from one probe request (both servers tokenize the same way; the counts are reported).
async function calibrateLong(s, model) {
    const probeWords = 300;
    const r = checked(await streamCompletion(s.port, { model, prompt: storyText(1, probeWords), max_tokens: 1, temperature: 0 }), 'calibrate');
    const perWord = r.usage.prompt_tokens / probeWords;
    return Math.max(16, Math.round((CFG.longTokens - 12) / perWord));
}

// One fresh server: every per-model measurement.
async function measureModel(kind, modelPath, run, st) {
    const name = path.basename(modelPath).replace(/\.gguf$/i, '').toLowerCase();
    promptSerial = run * 1000; // both servers of a run get the same prompts
    const s = await startServer(kind, modelPath, `${name}-run${run}`);
    if (s.error) throw new Error(`${kind} did not start with ${name}: ${s.error}`);
    const m = { startupMs: s.startupMs, rssLoad: s.rssLoad };
    try {
        const model = name; // llama-server (single model) accepts any name
        if (st.longWords === undefined) st.longWords = await calibrateLong(s, model);
        await single(s, model, uniquePrompt('warm up', 8), 8, 'warm-up');
        const short = await single(s, model, uniquePrompt('short', 8), CFG.maxTokens, 'short prompt');
        Object.assign(m, { ttftShort: short.ttft, decodeShort: short.decode, agg1: short.agg,
            promptShort: short.promptTokens, complShort: short.completionTokens });
        const long = await single(s, model, uniquePrompt('long', st.longWords), CFG.maxTokens, 'long prompt');
        Object.assign(m, { ttftLong: long.ttft, decodeLong: long.decode, promptLong: long.promptTokens, complLong: long.completionTokens });
        for (const c of CFG.concurrency) {
            const r = await concurrent(s, model, c);
            m[`agg${c}`] = r.agg;
            m[`ttfts${c}`] = r.ttfts;
            m[`tokens${c}`] = r.tokens;
        }
        m.rssConc = rssMiB(s.proc.pid);
        const pr = await prefixReuse(s, model, uniquePrompt('prefix', st.longWords));
        Object.assign(m, { ttftPrefix: pr.ttft, cachedPrefix: pr.cached, promptPrefix: pr.promptTokens });
        if (st.wrk) {
            const w = wrkHealth(s.port);
            m.healthRps = w.rps;
            if (w.note) m.wrkNote = w.note;
        }
    } finally {
        await stopServer(s);
    }
    return m;
}

async function measureNoModel(kind, run) {
    const s = await startServer(kind, null, `nomodel-run${run}`);
    if (s.error) return { error: s.error };
    const m = { startupMs: s.startupMs, rss: s.rssLoad };
    const h = await httpGet(s.port, '/health', T.health);
    m.health = h.body?.slice(0, 200);
    await stopServer(s);
    return m;
}

// ---------- agent sessions ----------
// What agents and chat front-ends do: each of n conversations sends its whole transcript again
// on every turn (the previous turns, their answers, about sessionUserTokens of new user text),
// one client per conversation, more conversations than slots. A server that keeps only what is
// in its slots evaluates a returning conversation from the start; one that keeps evicted prompts
// (a host-RAM prompt cache) evaluates only the new turn.

// The transcript's text for turn t (0-based) of conversation c: the same for both servers of a
// run (the answers differ only if the servers' greedy outputs do; the notes compare the tokens).
function sessionUserText(run, n, c, t, words) {
    const head = t === 0 ? `${(run * 131 + n * 17 + c) * 7919 % 100000} conversation ${c}. Once upon a time ` : '';
    return `${t === 0 ? '' : '\n'}User: ${head}${storyText(run * 100_000 + n * 1000 + c * 10 + t + 1, words)}\nAssistant:`;
}

// Words of story text for about `tokens` tokens, from one probe (the same in every process).
async function sessionWords(s, model, tokens) {
    const probeWords = 120;
    const r = checked(await streamCompletion(s.port, { model, prompt: storyText(3, probeWords), max_tokens: 1, temperature: 0 }), 'sessions: probe');
    return Math.max(4, Math.round(tokens / (r.usage.prompt_tokens / probeWords)));
}

// One conversation: turns in sequence, each streamed. Returns the per-turn figures.
async function conversation(s, model, run, n, c, words) {
    let transcript = '';
    const turns = [];
    for (let t = 0; t < CFG.sessionTurns; t++) {
        transcript += sessionUserText(run, n, c, t, words);
        const r = checked(await streamCompletion(s.port,
            { model, prompt: transcript, max_tokens: CFG.sessionMaxTokens, temperature: 0 }), `session ${c}, turn ${t + 1}`);
        turns.push({
            ttft: r.tFirst === null ? null : r.tFirst - r.t0, tEnd: r.tEnd,
            prompt: r.usage.prompt_tokens, cached: r.usage.prompt_tokens_details?.cached_tokens ?? null,
            completion: r.usage.completion_tokens,
        });
        transcript += r.text;
    }
    return turns;
}

function promptCacheOf(healthBody) {
    try {
        const h = JSON.parse(healthBody);
        return (h.models || []).map((m) => m.prompt_cache).find(Boolean) || null;
    } catch {
        return null;
    }
}

// One fresh server, n conversations at once.
async function measureSessions(kind, n, run) {
    const model = path.basename(CFG.sessionModel).replace(/\.gguf$/i, '').toLowerCase();
    const s = await startServer(kind, CFG.sessionModel, `sessions${n}-run${run}`,
        { parallel: CFG.sessionSlots, threads: CFG.sessionThreads });
    if (s.error) throw new Error(`${kind} did not start with ${model}: ${s.error}`);
    try {
        const words = await sessionWords(s, model, CFG.sessionUserTokens); // also the warm-up
        const t0 = now();
        const convs = await Promise.all(Array.from({ length: n }, (_, c) => conversation(s, model, run, n, c, words)));
        const turns = convs.flat();
        const m = {
            wall: (Math.max(...turns.map((x) => x.tEnd)) - t0) / 1000,
            ttfts: turns.map((x) => x.ttft),
            promptTokens: turns.reduce((a, x) => a + x.prompt, 0),
            cachedTokens: turns.reduce((a, x) => a + (x.cached ?? 0), 0),
            completionTokens: turns.reduce((a, x) => a + x.completion, 0),
            lastPrompt: Math.max(...turns.map((x) => x.prompt)),
        };
        if (kind === 'shimmy') m.promptCache = promptCacheOf((await httpGet(s.port, '/health', T.health)).body);
        return m;
    } finally {
        await stopServer(s);
    }
}

function sessionRows(res) {
    const rows = [`| **agent sessions: ${path.basename(CFG.sessionModel).replace(/\.gguf$/i, '')}, ${CFG.sessionSlots} slots, `
        + `${CFG.sessionThreads} thread${CFG.sessionThreads > 1 ? 's' : ''}** | | | |`];
    for (const [n, r] of Object.entries(res)) {
        const S = r.shimmy.filter((m) => !m.error), R = r['llama-server'].filter((m) => !m.error);
        const pct = (x, p) => percentile(x.flatMap((m) => m.ttfts), p);
        const what = `${n} conversations × ${CFG.sessionTurns} turns`;
        rows.push(
            row(`TTFT p50, ${what} (ms)`, pct(S, 50), pct(R, 50), 'lower'),
            row(`TTFT p99, ${what} (ms)`, pct(S, 99), pct(R, 99), 'lower'),
            row(`wall time, all ${Number(n) * CFG.sessionTurns} turns of ${what} (s)`,
                median(S.map((m) => m.wall)), median(R.map((m) => m.wall)), 'lower', 2),
        );
    }
    return rows;
}

function sessionNotes(res) {
    const notes = [];
    const mib = (b) => (b / 2 ** 20).toFixed(1);
    for (const [n, r] of Object.entries(res)) {
        const S = r.shimmy.filter((m) => !m.error), R = r['llama-server'].filter((m) => !m.error);
        const med = (x, k) => fmt(median(x.map((m) => m[k])), 0);
        let line = `- agent sessions, ${n} conversations: prompt tokens shimmy/llama-server ${med(S, 'promptTokens')}/${med(R, 'promptTokens')}`
            + ` (last turn ${med(S, 'lastPrompt')}/${med(R, 'lastPrompt')}), cached_tokens reported ${med(S, 'cachedTokens')}/${med(R, 'cachedTokens')}`
            + `, completion tokens ${med(S, 'completionTokens')}/${med(R, 'completionTokens')}`
            + `; wall time of each run shimmy/llama-server (s): ${r.shimmy.map((m, i) => `${m.error ? 'failed' : fmt(m.wall, 1)}/${r['llama-server'][i]?.error ? 'failed' : fmt(r['llama-server'][i]?.wall, 1)}`).join(', ')}`;
        const pcs = S.map((m) => m.promptCache).filter(Boolean);
        if (pcs.length) {
            const each = pcs.map((p) => `${mib(p.bytes)} MiB in ${p.entries} entries, ${p.saves} saves, ${p.restores} restores, longest stall ${p.max_stall_ms} ms`);
            line += `; shimmy's prompt cache after each run (/health): ${each.join('; ')} (budget ${mib(pcs[0].budget_bytes)} MiB)`;
        }
        notes.push(line);
        for (const kind of SERVERS) {
            const errs = r[kind].filter((m) => m.error);
            if (errs.length) notes.push(`- agent sessions, ${n} conversations, ${kind}: ${errs.length} of ${r[kind].length} runs failed: ${errs[0].error}`);
        }
    }
    return notes;
}

// ---------- speculative decoding: n-gram drafts on a repetitive task ----------

// "Rewrite this text" prompts: a story passage, the instruction, and the passage's first words
// again, so that a model that copies finds its n-grams in the prompt (llama-server's and
// shimmy's ngram-simple look them up in the slot's prompt and output).
function rewritePrompt(i) {
    const text = storyText(1000 + i, 90);
    return `Here is a story.\n\n${text}\n\nRewrite the story above word for word.\n\n${text.split(' ').slice(0, 6).join(' ')}`;
}
const SPEC_PROMPTS = 3;
const specFlags = () => ['--spec-type', 'ngram-simple', '--spec-ngram-simple-size-n', `${CFG.specN}`,
    '--spec-ngram-simple-size-m', `${CFG.specM}`];

// One fresh server (spec: with ngram-simple), the rewrite prompts one after the other.
async function measureSpec(kind, modelPath, run, spec) {
    const model = path.basename(modelPath).replace(/\.gguf$/i, '').toLowerCase();
    const s = await startServer(kind, modelPath, `spec${spec ? 'on' : 'off'}-run${run}`,
        { parallel: 1, extra: spec ? specFlags() : [] });
    if (s.error) throw new Error(`${kind} did not start with ${model}: ${s.error}`);
    try {
        checked(await streamCompletion(s.port, { model, prompt: 'Once upon a time', max_tokens: 4, temperature: 0 }), 'spec warm-up');
        const m = { decode: [], texts: [], tokens: 0, drafted: 0, accepted: 0 };
        for (let i = 0; i < SPEC_PROMPTS; i++) {
            const r = checked(await streamCompletion(s.port, { model, prompt: rewritePrompt(i), max_tokens: CFG.specTokens, temperature: 0 }), `rewrite ${i}`);
            m.decode.push(decodeRate(r));
            m.texts.push(r.text);
            m.tokens += r.usage.completion_tokens;
            m.drafted += r.timings?.draft_n ?? 0;
            m.accepted += r.timings?.draft_n_accepted ?? 0;
        }
        m.decodeMed = median(m.decode);
        if (kind === 'shimmy' && spec) { // shimmy's counters are per model, in /health
            const h = JSON.parse((await httpGet(s.port, '/health', T.health)).body || '{}');
            const sp = h.models?.[0]?.speculative;
            m.drafted = sp?.draft_tokens ?? null;
            m.accepted = sp?.accepted_tokens ?? null;
        }
        return m;
    } finally {
        await stopServer(s);
    }
}

function specRows(res) {
    const rows = [`| **speculative decoding: ngram-simple (n ${CFG.specN}, m ${CFG.specM}), rewrite task, 1 stream, ${CFG.specTokens} tokens** | | | |`];
    for (const [name, r] of Object.entries(res)) {
        const med = (kind, on) => median(r[kind][on ? 'on' : 'off'].filter((m) => !m.error).map((m) => m.decodeMed));
        const acc = (kind) => {
            const ms = r[kind].on.filter((m) => !m.error && m.drafted > 0);
            return ms.length ? 100 * median(ms.map((m) => m.accepted / m.drafted)) : null;
        };
        const up = (kind) => (med(kind, true) && med(kind, false) ? med(kind, true) / med(kind, false) : null);
        rows.push(
            row(`${name}: decode without speculation (tok/s)`, med('shimmy', false), med('llama-server', false), 'higher'),
            row(`${name}: decode with ngram-simple (tok/s)`, med('shimmy', true), med('llama-server', true), 'higher'),
            row(`${name}: speed-up from ngram-simple (with / without)`, up('shimmy'), up('llama-server'), 'higher', 2),
            row(`${name}: drafted tokens kept (%)`, acc('shimmy'), acc('llama-server'), 'higher'),
        );
    }
    return rows;
}

function specNotes(res) {
    const notes = [];
    for (const [name, r] of Object.entries(res)) {
        for (const kind of SERVERS) {
            const on = r[kind].on.filter((m) => !m.error), off = r[kind].off.filter((m) => !m.error);
            const same = on.length && off.length && on.every((m, i) => off[i] && m.texts.join('\u0000') === off[i].texts.join('\u0000'));
            notes.push(`- speculation, ${name}, ${kind}: greedy texts with and without ngram-simple ${same ? 'identical' : 'DIFFER'}`
                + `; drafted/kept per run: ${on.map((m) => `${m.drafted}/${m.accepted}`).join(', ')}; completion tokens per run ${on.map((m) => m.tokens).join(', ')}`);
            const errs = [...r[kind].on, ...r[kind].off].filter((m) => m.error);
            if (errs.length) notes.push(`- speculation, ${name}, ${kind}: ${errs.length} runs failed: ${errs[0].error}`);
        }
    }
    return notes;
}

// ---------- sizes, machine ----------

function realFile(p) {
    try { return fs.realpathSync(p); } catch { return null; }
}

// Bytes of the files after `strip --strip-unneeded` (what a release would ship) and as built.
function shippedSize(files) {
    const uniq = [...new Set(files.map(realFile).filter(Boolean))];
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'shimmy-size-'));
    let raw = 0, stripped = 0;
    try {
        for (const f of uniq) {
            raw += fs.statSync(f).size;
            const out = path.join(tmp, 'x');
            const r = spawnSync('strip', ['--strip-unneeded', '-o', out, f], { timeout: 60_000 });
            stripped += r.status === 0 ? fs.statSync(out).size : fs.statSync(f).size;
            fs.rmSync(out, { force: true });
        }
    } finally {
        fs.rmSync(tmp, { recursive: true, force: true });
    }
    return { raw, stripped, files: uniq.map((f) => path.relative(ROOT, f)) };
}

// The executable, the shared libraries it loads from its own build (ldd), and the CPU/GPU
// backend modules it may load at run time from the same folder.
function serverFiles(bin, libDirs) {
    const files = [bin];
    const ldd = spawnSync('ldd', [bin], { encoding: 'utf8', timeout: 20_000 });
    for (const line of (ldd.stdout || '').split('\n')) {
        const m = /=>\s+(\S+)/.exec(line);
        if (m && libDirs.some((d) => realFile(m[1])?.startsWith(realFile(d) + '/'))) files.push(m[1]);
    }
    for (const d of libDirs) {
        for (const f of fs.existsSync(d) ? fs.readdirSync(d) : []) {
            if (/^libggml-cpu-[a-z0-9_]+\.so$/.test(f)) files.push(path.join(d, f));
        }
    }
    return files;
}

function machine() {
    let cpu = os.cpus()[0]?.model || 'unknown';
    try {
        const m = /Model name:\s+(.+)/.exec(execFileSync('lscpu', { encoding: 'utf8', timeout: 10_000 }));
        if (m) cpu = m[1].trim();
    } catch { /* keep os.cpus() */ }
    return { cpu, cores: os.cpus().length, ramGiB: (os.totalmem() / 2 ** 30).toFixed(1), kernel: os.release() };
}

function refVersion() {
    const r = spawnSync(CFG.ref, ['--version'], { encoding: 'utf8', timeout: 20_000 });
    const m = /version:\s*(.+)/.exec(`${r.stdout}${r.stderr}`);
    return m ? m[1].trim() : 'unknown';
}

// ---------- report ----------

const fmt = (v, d = 1) => (v === null || v === undefined || !Number.isFinite(v) ? 'n/a' : v.toFixed(d));

// better: 'lower' (ms, MiB) -> ratio = ref / shimmy; 'higher' (tok/s, req/s) -> shimmy / ref.
function row(metric, a, b, better, digits = 1) {
    let ratio = null;
    if (Number.isFinite(a) && Number.isFinite(b) && a > 0 && b > 0) ratio = better === 'lower' ? b / a : a / b;
    return `| ${metric} | ${fmt(a, digits)} | ${fmt(b, digits)} | ${ratio === null ? 'n/a' : ratio.toFixed(2)} |`;
}

function modelRows(name, res) {
    const S = res.shimmy, R = res['llama-server'];
    const med = (x, k) => median(x.map((m) => m[k]));
    const pct = (x, c, p) => percentile(x.flatMap((m) => m[`ttfts${c}`] || []), p);
    const n = (k) => med(S, k) ?? med(R, k);
    const rows = [
        `| **${name}** | | | |`,
        row('start-up, model loaded (ms)', med(S, 'startupMs'), med(R, 'startupMs'), 'lower'),
        row(`TTFT, short prompt (${fmt(n('promptShort'), 0)} tokens) (ms)`, med(S, 'ttftShort'), med(R, 'ttftShort'), 'lower'),
        row('decode, single stream, short prompt (tok/s)', med(S, 'decodeShort'), med(R, 'decodeShort'), 'higher'),
        row(`TTFT, long prompt (${fmt(n('promptLong'), 0)} tokens) (ms)`, med(S, 'ttftLong'), med(R, 'ttftLong'), 'lower'),
        row('decode, single stream, long prompt (tok/s)', med(S, 'decodeLong'), med(R, 'decodeLong'), 'higher'),
    ];
    for (const c of [1, ...CFG.concurrency]) rows.push(row(`aggregate, ${c} stream${c > 1 ? 's' : ''} (tok/s)`, med(S, `agg${c}`), med(R, `agg${c}`), 'higher'));
    for (const c of CFG.concurrency) {
        rows.push(row(`TTFT p50, ${c} streams (ms)`, pct(S, c, 50), pct(R, c, 50), 'lower'));
        rows.push(row(`TTFT p99, ${c} streams (ms)`, pct(S, c, 99), pct(R, c, 99), 'lower'));
    }
    rows.push(
        row(`prefix reuse: TTFT of 2nd request (${fmt(n('promptPrefix'), 0)} tokens) (ms)`, med(S, 'ttftPrefix'), med(R, 'ttftPrefix'), 'lower'),
        row('prefix reuse: cached_tokens reported', med(S, 'cachedPrefix'), med(R, 'cachedPrefix'), 'higher', 0),
        row('RSS after load (MiB)', med(S, 'rssLoad'), med(R, 'rssLoad'), 'lower'),
        row(`RSS after ${Math.max(...CFG.concurrency)} streams (MiB)`, med(S, 'rssConc'), med(R, 'rssConc'), 'lower'),
    );
    if (S.some((m) => m.healthRps !== undefined)) rows.push(row(`GET /health, wrk 2 threads 16 connections (req/s)`, med(S, 'healthRps'), med(R, 'healthRps'), 'higher', 0));
    return rows;
}

function tokenNotes(name, res) {
    const S = res.shimmy, R = res['llama-server'];
    const med = (x, k) => median(x.map((m) => m[k]));
    const parts = [
        `short ${fmt(med(S, 'complShort'), 0)}/${fmt(med(R, 'complShort'), 0)}`,
        `long ${fmt(med(S, 'complLong'), 0)}/${fmt(med(R, 'complLong'), 0)}`,
        ...CFG.concurrency.map((c) => `${c} streams ${fmt(med(S, `tokens${c}`), 0)}/${fmt(med(R, `tokens${c}`), 0)}`),
    ];
    const notes = [...S, ...R].map((m) => m.wrkNote).filter(Boolean);
    return `- ${name}: completion tokens shimmy/llama-server: ${parts.join(', ')}${notes.length ? `; wrk: ${[...new Set(notes)].join('; ')}` : ''}`;
}

// Replaces the text between the result markers of docs/BENCHMARKS.md.
function updateDocs(header, table, notes) {
    const doc = path.join(ROOT, 'docs/BENCHMARKS.md');
    const begin = '<!-- bench:results:begin -->', end = '<!-- bench:results:end -->';
    const text = fs.existsSync(doc) ? fs.readFileSync(doc, 'utf8') : '';
    const i = text.indexOf(begin), j = text.indexOf(end);
    if (i < 0 || j < i) {
        log(`${path.relative(ROOT, doc)} has no result markers: not updated`);
        return;
    }
    const img = path.relative(path.dirname(doc), path.join(CFG.outDir, 'throughput.png'));
    const body = `${header.map((h) => `${h}  `).join('\n')}\n\n${table}\n\n${notes.join('\n')}\n\n![aggregate tokens/s vs concurrent streams](${img})\n`;
    fs.writeFileSync(doc, `${text.slice(0, i + begin.length)}\n${body}${text.slice(j)}`);
    log(`updated ${path.relative(ROOT, doc)}`);
}

// ---------- main ----------

// ---------- RPC servers and the Vulkan module (BENCH_ONLY=rpc) ----------
// shimmy alone: (1) a model split over two `shimmy rpc-server` on loopback (--rpc A,B
// --gpu-backend rpc --gpu-layers all --tensor-split 1,1) against the same model local, i.e. what
// the RPC transport costs when the network is free; (2) `shimmy serve` with no model started from
// a module folder with the Vulkan module and from one without it (no GPU here: the Vulkan module
// is deferred unless GGML_VK_VISIBLE_DEVICES is set; with it, Mesa's lavapipe, a CPU Vulkan
// device, is loaded). llama-server's own --rpc is measured only when its build has RPC.

function tcpReady(port, deadlineMs) {
    return new Promise((resolve) => {
        const t0 = now();
        const attempt = () => {
            const c = net.connect(port, '127.0.0.1');
            c.once('connect', () => { c.destroy(); resolve(true); });
            c.once('error', () => { c.destroy(); if (now() - t0 > deadlineMs) resolve(false); else setTimeout(attempt, 20); });
        };
        attempt();
    });
}

async function startRpcServer(i) {
    const port = await freePort();
    fs.mkdirSync(CFG.logDir, { recursive: true });
    const logPath = path.join(CFG.logDir, `${String(++logSerial).padStart(3, '0')}-rpc-server-${i}.log`);
    const fd = fs.openSync(logPath, 'w');
    const proc = spawn(CFG.shimmy, ['rpc-server', '--bind', `127.0.0.1:${port}`, '--threads', '1'],
        { env, stdio: ['ignore', fd, fd], detached: true });
    fs.closeSync(fd);
    live.add(proc);
    proc.on('exit', () => live.delete(proc));
    if (!(await tcpReady(port, 30_000))) {
        await stopServer({ kind: 'rpc-server', proc });
        throw new Error(`rpc-server ${i} did not listen within 30 s (is the RPC module built? scripts/build-rpc.sh): ${fs.readFileSync(logPath, 'utf8').slice(-300)}`);
    }
    return { kind: 'rpc-server', proc, port };
}

async function measureRpcModel(modelPath, run, rpcList) {
    const model = path.basename(modelPath).replace(/\.gguf$/i, '').toLowerCase();
    const extra = rpcList ? ['--rpc', rpcList, '--gpu-backend', 'rpc', '--gpu-layers', 'all', '--tensor-split', '1,1'] : [];
    const s = await startServer('shimmy', modelPath, `${rpcList ? 'rpc' : 'local'}-run${run}`, { parallel: 1, extra });
    if (s.error) return { error: s.error };
    try {
        await single(s, model, 'Once upon a time', 4, 'warm-up');
        const ttfts = [], decodes = [];
        const texts = [];
        for (let i = 0; i < 3; i++) {
            const r = await single(s, model, uniquePrompt(`rpc ${i}`, 24), CFG.maxTokens, `request ${i}`);
            ttfts.push(r.ttft);
            if (r.decode) decodes.push(r.decode);
            texts.push(r.completionTokens);
        }
        let placement = null;
        if (rpcList) {
            const h = await httpGet(s.port, '/health', T.health);
            const dev = JSON.parse(h.body || '{}').models?.[0]?.devices;
            placement = dev ? dev.map((d) => `${d.name}: ${d.layers ?? '?'}`).join(', ') : null;
        }
        return { startupMs: s.startupMs, rss: s.rssLoad, ttft: median(ttfts), decode: median(decodes), tokens: texts, placement };
    } finally {
        await stopServer(s);
    }
}

// A module folder: links to build/lib's modules, without libggml-vulkan.so when !vulkan.
function moduleDir(vulkan) {
    const dir = path.join(ROOT, 'deps/bench-run', vulkan ? 'lib-vulkan' : 'lib-no-vulkan');
    fs.rmSync(dir, { recursive: true, force: true });
    fs.mkdirSync(dir, { recursive: true });
    const sLib = path.join(path.dirname(CFG.shimmy), 'lib');
    const skip = (f) => CFG.cpuExclude.some((x) => f === `libggml-cpu-${x}.so`);
    for (const f of fs.readdirSync(sLib)) {
        if (!/^libggml-.*\.so$/.test(f) || skip(f) || (!vulkan && f === 'libggml-vulkan.so')) continue;
        fs.symlinkSync(path.join(sLib, f), path.join(dir, f));
    }
    if (vulkan && !fs.existsSync(path.join(dir, 'libggml-vulkan.so'))) throw new Error(`${sLib} has no libggml-vulkan.so`);
    return dir;
}

async function measureStartVariant(v, run) {
    const saved = { dir: moduleDirs.shimmy, vk: env.GGML_VK_VISIBLE_DEVICES };
    moduleDirs.shimmy = v.dir;
    if (v.vk === undefined) delete env.GGML_VK_VISIBLE_DEVICES; else env.GGML_VK_VISIBLE_DEVICES = v.vk;
    try {
        const s = await startServer('shimmy', null, `start-${v.key}-run${run}`);
        if (s.error) return { error: s.error };
        const h = await httpGet(s.port, '/health', T.health);
        await stopServer(s);
        const logText = fs.readFileSync(s.logPath, 'utf8');
        const gpuLine = logText.split('\n').find((l) => /gpu: /.test(l)) || '';
        return { startupMs: s.startupMs, rss: s.rssLoad, health: h.status, gpuLine: gpuLine.trim().slice(0, 300) };
    } finally {
        moduleDirs.shimmy = saved.dir;
        if (saved.vk === undefined) delete env.GGML_VK_VISIBLE_DEVICES; else env.GGML_VK_VISIBLE_DEVICES = saved.vk;
    }
}

function refHasRpc() {
    const d = path.dirname(CFG.ref);
    return fs.existsSync(path.join(d, 'libggml-rpc.so'));
}

async function mainRpc() {
    for (const f of [CFG.shimmy, ...CFG.models]) if (!fs.existsSync(f)) throw new Error(`missing ${f} (run bench/run.sh, which builds it)`);
    const started = new Date(), load0 = os.loadavg()[0], mach = machine(), release = refVersion();
    const res = { models: {}, start: {}, refRpc: refHasRpc() };
    const rpcs = [await startRpcServer(0), await startRpcServer(1)];
    const rpcList = rpcs.map((r) => `127.0.0.1:${r.port}`).join(',');
    try {
        for (const modelPath of CFG.models) {
            const name = path.basename(modelPath).replace(/\.gguf$/i, '');
            res.models[name] = { local: [], rpc: [] };
            for (let run = 1; run <= CFG.runs; run++) {
                for (const where of ['local', 'rpc']) {
                    log(`${name}: ${where}, run ${run}/${CFG.runs}`);
                    let m;
                    try { m = await measureRpcModel(modelPath, run, where === 'rpc' ? rpcList : null); } catch (e) { m = { error: e.message.slice(0, 500) }; }
                    if (m.error) log(`  failed: ${m.error}`);
                    else log(`  TTFT ${fmt(m.ttft, 0)} ms, decode ${fmt(m.decode)} tok/s${m.placement ? `, ${m.placement}` : ''}`);
                    res.models[name][where].push(m);
                }
            }
        }
    } finally {
        for (const r of rpcs) await stopServer(r);
    }
    const variants = [
        { key: 'no-vulkan', label: 'module folder without libggml-vulkan.so', dir: moduleDir(false), vk: undefined },
        { key: 'vulkan', label: 'with libggml-vulkan.so, GGML_VK_VISIBLE_DEVICES unset (deferred: no GPU device node)', dir: moduleDir(true), vk: undefined },
        { key: 'vulkan-lvp', label: 'with libggml-vulkan.so, GGML_VK_VISIBLE_DEVICES=0 (loaded: lavapipe, a CPU Vulkan device)', dir: moduleDir(true), vk: '0' },
    ];
    for (const v of variants) res.start[v.key] = [];
    for (let run = 1; run <= Math.max(CFG.runs, 3); run++) {
        for (const v of variants) {
            log(`start-up, no model, ${v.key}: run ${run}`);
            const m = await measureStartVariant(v, run);
            if (m.error) log(`  failed: ${m.error}`); else log(`  ${fmt(m.startupMs, 0)} ms, RSS ${fmt(m.rss)} MiB`);
            res.start[v.key].push(m);
        }
    }

    const ok = (xs) => xs.filter((m) => !m.error);
    const med = (xs, k) => median(ok(xs).map((m) => m[k]).filter((x) => x !== null && x !== undefined));
    const lines = ['| metric | local | 2 RPC servers on loopback | ratio (> 1.00: local better) |', '|---|---:|---:|---:|'];
    for (const [name, r] of Object.entries(res.models)) {
        lines.push(`| **${name}** | | | |`);
        lines.push(row('decode, 1 stream (tok/s)', med(r.local, 'decode'), med(r.rpc, 'decode'), 'higher'));
        lines.push(row('TTFT, 1 stream (ms)', med(r.local, 'ttft'), med(r.rpc, 'ttft'), 'lower', 0));
        lines.push(row('start-up with the model (ms)', med(r.local, 'startupMs'), med(r.rpc, 'startupMs'), 'lower', 0));
    }
    const st = ['| `shimmy serve`, no model | start-up (ms) | RSS after /health (MiB) |', '|---|---:|---:|'];
    for (const v of variants) st.push(`| ${v.label} | ${fmt(med(res.start[v.key], 'startupMs'), 0)} | ${fmt(med(res.start[v.key], 'rss'))} |`);
    const notes = [];
    notes.push(res.refRpc ? '- llama-server --rpc: not measured by this script yet' : `- llama-server --rpc: n/a: the reference build (${path.relative(ROOT, path.dirname(CFG.ref))}) has no RPC backend (bench/build-reference.sh builds it with GGML_RPC off)`);
    for (const [name, r] of Object.entries(res.models)) {
        const p = ok(r.rpc).find((m) => m.placement)?.placement;
        if (p) notes.push(`- ${name} over RPC, /health devices: ${p}`);
        const same = JSON.stringify(ok(r.local)[0]?.tokens) === JSON.stringify(ok(r.rpc)[0]?.tokens);
        notes.push(`- ${name}: completion token counts local vs RPC ${same ? 'identical' : 'DIFFER'}`);
        for (const where of ['local', 'rpc']) {
            const errs = r[where].filter((m) => m.error);
            if (errs.length) notes.push(`- ${name}, ${where}: ${errs.length} runs failed: ${errs[0].error}`);
        }
    }
    for (const v of variants) {
        const m = ok(res.start[v.key])[0];
        const e = res.start[v.key].find((x) => x.error);
        if (m?.gpuLine) notes.push(`- ${v.key}: log \`${m.gpuLine.replace(/`/g, "'")}\``);
        if (e) notes.push(`- ${v.key}: failed: ${e.error}`);
    }
    const header = [
        `Date: ${started.toISOString().replace('T', ' ').slice(0, 16)} UTC`,
        `Machine: ${mach.cpu}, ${mach.cores} cores, ${mach.ramGiB} GiB RAM, Linux ${mach.kernel}; no GPU`,
        `llama.cpp ${release}`,
        `Models: ${CFG.models.map((m) => path.relative(ROOT, m)).join(', ')}`,
        `Settings: ${CFG.runs} run${CFG.runs > 1 ? 's' : ''}, interleaved; shimmy with 1 slot, ${CFG.ctx} tokens of context, ${CFG.threads} threads; `
            + `RPC: two \`shimmy rpc-server --threads 1\` on 127.0.0.1, \`--rpc A,B --gpu-backend rpc --gpu-layers all --tensor-split 1,1\`; `
            + `per run a warm-up, then 3 streamed completions of max_tokens ${CFG.maxTokens}, temperature 0 (medians)${QUICK ? ' (BENCH_QUICK)' : ''}`,
        `Load average (1 min) at start / end: ${load0.toFixed(2)} / ${os.loadavg()[0].toFixed(2)} (shared machine: timings are noisy)`,
    ];
    const report = `# Benchmark ${started.toISOString().slice(0, 10)}: RPC and the Vulkan module\n\n${header.map((h) => `${h}  `).join('\n')}\n\n${lines.join('\n')}\n\n${st.join('\n')}\n\n${notes.join('\n')}\n`;
    fs.mkdirSync(CFG.outDir, { recursive: true });
    const stem = `${started.toISOString().slice(0, 10)}-rpc${QUICK ? '-quick' : ''}`;
    fs.writeFileSync(path.join(CFG.outDir, `${stem}.md`), report);
    fs.writeFileSync(path.join(CFG.outDir, `${stem}.json`), `${JSON.stringify({ cfg: CFG, machine: mach, release, ...res }, null, 1)}\n`);
    console.log(`\n${report}\nwritten: ${path.relative(ROOT, path.join(CFG.outDir, `${stem}.md`))}`);
}

async function main() {
    for (const f of [CFG.shimmy, CFG.ref, ...(doModels || doSpec ? CFG.models : []), ...(doSessions ? [CFG.sessionModel] : [])]) {
        if (!fs.existsSync(f)) throw new Error(`missing ${f} (run bench/run.sh, which builds it)`);
    }
    prepareModuleDirs();
    const mach = machine();
    const release = refVersion();
    const started = new Date();
    const load0 = os.loadavg()[0];
    if (load0 > 0.5) log(`warning: load average ${load0.toFixed(2)} before the start: other work will disturb the numbers`);
    log(`runs ${CFG.runs}, slots ${CFG.parallel}, ctx/slot ${CFG.ctx}, threads ${CFG.threads}, max_tokens ${CFG.maxTokens}`);

    // Page cache: read each model once so no server pays the first read from disk.
    for (const m of new Set([...(doModels || doSpec ? CFG.models : []), ...(doSessions ? [CFG.sessionModel] : [])])) execFileSync('cat', [m], { stdio: ['ignore', 'ignore', 'inherit'], maxBuffer: 1, timeout: 120_000 });

    const noModel = { shimmy: [], 'llama-server': [] };
    for (let run = 1; doModels && run <= CFG.runs; run++) {
        for (const kind of SERVERS) noModel[kind].push(await measureNoModel(kind, run));
    }

    const results = {};
    const states = {};
    for (const [i, modelPath] of (doModels ? CFG.models : []).entries()) {
        const name = path.basename(modelPath).replace(/\.gguf$/i, '');
        results[name] = { shimmy: [], 'llama-server': [] };
        states[name] = { wrk: i === 0 };
        for (let run = 1; run <= CFG.runs; run++) {
            for (const kind of SERVERS) {
                log(`${name}: run ${run}/${CFG.runs}: ${kind}`);
                let m;
                try {
                    m = await measureModel(kind, modelPath, run, states[name]);
                } catch (e) { // reported under the table; the other runs go on
                    m = { error: e.message.slice(0, 500) };
                    log(`  failed: ${m.error}`);
                }
                results[name][kind].push(m);
                log(`  start ${fmt(m.startupMs, 0)} ms, TTFT ${fmt(m.ttftShort, 0)}/${fmt(m.ttftLong, 0)} ms, `
                    + `decode ${fmt(m.decodeShort)} tok/s, agg ${CFG.concurrency.map((c) => fmt(m[`agg${c}`])).join('/')} tok/s`);
            }
        }
    }

    // Agent sessions: per conversation count, runs interleaved as above.
    const sessions = {};
    for (const n of doSessions ? CFG.sessions : []) {
        sessions[n] = { shimmy: [], 'llama-server': [] };
        for (let run = 1; run <= CFG.runs; run++) {
            for (const kind of SERVERS) {
                log(`agent sessions, ${n} conversations × ${CFG.sessionTurns} turns: run ${run}/${CFG.runs}: ${kind}`);
                let m;
                try {
                    m = await measureSessions(kind, n, run);
                } catch (e) {
                    m = { error: e.message.slice(0, 500) };
                    log(`  failed: ${m.error}`);
                }
                sessions[n][kind].push(m);
                log(`  TTFT p50 ${fmt(percentile(m.ttfts || [], 50), 0)} ms, p99 ${fmt(percentile(m.ttfts || [], 99), 0)} ms, wall ${fmt(m.wall, 2)} s`
                    + `${m.promptCache ? `, cache ${JSON.stringify(m.promptCache)}` : ''}`);
            }
        }
    }

    // Speculative decoding: per model, runs interleaved, each server without and with.
    const spec = {};
    for (const modelPath of doSpec ? CFG.models : []) {
        const name = path.basename(modelPath).replace(/\.gguf$/i, '');
        spec[name] = { shimmy: { on: [], off: [] }, 'llama-server': { on: [], off: [] } };
        for (let run = 1; run <= CFG.runs; run++) {
            for (const kind of SERVERS) {
                for (const on of [false, true]) {
                    log(`${name}: speculation ${on ? 'on' : 'off'}, run ${run}/${CFG.runs}: ${kind}`);
                    let m;
                    try {
                        m = await measureSpec(kind, modelPath, run, on);
                    } catch (e) {
                        m = { error: e.message.slice(0, 500) };
                        log(`  failed: ${m.error}`);
                    }
                    spec[name][kind][on ? 'on' : 'off'].push(m);
                    log(`  decode ${fmt(m.decodeMed)} tok/s${on ? `, drafted/kept ${m.drafted}/${m.accepted}` : ''}`);
                }
            }
        }
    }

    const sizes = {
        shimmy: shippedSize(serverFiles(CFG.shimmy, [path.join(path.dirname(CFG.shimmy), 'lib')])),
        'llama-server': shippedSize(serverFiles(CFG.ref, [path.dirname(CFG.ref)])),
    };

    // ---- table ----
    const nmS = noModel.shimmy, nmR = noModel['llama-server'];
    const nmMed = (x) => median(x.filter((m) => !m.error).map((m) => m.startupMs));
    const nmNote = (x) => x.find((m) => m.error)?.error;
    const lines = [
        '| metric | shimmy | llama-server | ratio (> 1.00: shimmy better) |',
        '|---|---:|---:|---:|',
    ];
    if (doModels) lines.push(row('start-up, no model (ms)', nmMed(nmS), nmMed(nmR), 'lower'));
    for (const [name, res] of Object.entries(results)) lines.push(...modelRows(name, res));
    if (doSessions) lines.push(...sessionRows(sessions));
    if (doSpec) lines.push(...specRows(spec));
    lines.push('| **all** | | | |');
    lines.push(row('shipped size, stripped: server + its libraries + CPU modules (MiB)', sizes.shimmy.stripped / 2 ** 20, sizes['llama-server'].stripped / 2 ** 20, 'lower'));
    lines.push(row('same, as built (MiB)', sizes.shimmy.raw / 2 ** 20, sizes['llama-server'].raw / 2 ** 20, 'lower'));
    const table = lines.join('\n');

    const notes = [];
    for (const [kind, x] of Object.entries(doModels ? noModel : {})) {
        const e = nmNote(x);
        if (e) notes.push(`- start-up with no model, ${kind}: n/a: ${e}`);
        else notes.push(`- start-up with no model, ${kind}: /health answered \`${(x[0].health || '').replace(/\s+/g, ' ').slice(0, 120)}\``);
    }
    for (const [name, res] of Object.entries(results)) {
        notes.push(tokenNotes(name, res));
        for (const kind of SERVERS) {
            const errs = res[kind].filter((m) => m.error);
            if (errs.length) notes.push(`- ${name}, ${kind}: ${errs.length} of ${res[kind].length} runs failed: ${errs[0].error}`);
        }
    }
    notes.push(...sessionNotes(sessions));
    notes.push(...specNotes(spec));
    notes.push(`- shipped files: shimmy ${sizes.shimmy.files.length} (${path.relative(ROOT, CFG.shimmy)} + ${path.relative(ROOT, path.dirname(CFG.shimmy))}/lib), llama-server ${sizes['llama-server'].files.length} (${sizes['llama-server'].files.filter((f) => !/libggml-(cpu|cuda|vulkan|hip|sycl|opencl|rpc)/.test(f)).map((f) => path.basename(f)).join(', ')} + CPU modules)`);

    const settings = !doModels ? `${CFG.runs} run${CFG.runs > 1 ? 's' : ''} per server, interleaved` : `${CFG.runs} run${CFG.runs > 1 ? 's' : ''} per server, interleaved; ${CFG.parallel} slots, ${CFG.ctx} tokens of context per slot `
        + `(llama-server: -c ${CFG.ctx * CFG.parallel} --no-kv-unified), ${CFG.threads} threads, temperature 0, max_tokens ${CFG.maxTokens}`
        + `${CFG.shimmyExtra.length ? `; shimmy extra: \`${CFG.shimmyExtra.join(' ')}\`` : ''}${CFG.refExtra.length ? `; llama-server extra: \`${CFG.refExtra.join(' ')}\`` : ''}`;
    const date = started.toISOString().slice(0, 10);
    const header = [
        `Date: ${started.toISOString().replace('T', ' ').slice(0, 16)} UTC`,
        `Machine: ${mach.cpu}, ${mach.cores} cores, ${mach.ramGiB} GiB RAM, Linux ${mach.kernel}`,
        `Reference: llama-server ${release}, built from the pinned source (deps/llama.cpp) by bench/build-reference.sh`,
        `Models: ${CFG.models.map((m) => path.relative(ROOT, m)).join(', ')}`,
        `Settings: ${settings}${QUICK ? ' (BENCH_QUICK)' : ''}`,
        ...(doSessions ? [`Agent sessions: ${path.relative(ROOT, CFG.sessionModel)}, ${CFG.sessions.join(' and ')} conversations (one client each) of ${CFG.sessionTurns} turns; `
            + `each turn resends the transcript plus the last answer and about ${CFG.sessionUserTokens} tokens of new user text, streamed `
            + `POST /v1/completions, max_tokens ${CFG.sessionMaxTokens}, temperature 0; ${CFG.sessionSlots} slots (llama-server: -np ${CFG.sessionSlots} `
            + `-c ${CFG.ctx * CFG.sessionSlots} --no-kv-unified), ${CFG.sessionThreads} thread${CFG.sessionThreads > 1 ? 's' : ''} (-t/-tb ${CFG.sessionThreads}), `
            + `each server's default prompt cache (shimmy --cache-ram 4096 MiB, llama-server 8192 MiB)`] : []),
        ...(doSpec ? [`Speculative decoding: each server fresh with 1 slot, ${CFG.threads} thread${CFG.threads > 1 ? 's' : ''} (-t/-tb ${CFG.threads}), without and with \`${specFlags().join(' ')}\` (the same flags on both), `
            + `${SPEC_PROMPTS} "rewrite this story word for word" prompts of about 120 words one after the other, streamed, temperature 0, max_tokens ${CFG.specTokens}; `
            + `decode = median over the prompts of (tokens - 1) / (last - first streamed token); kept % = accepted / drafted (shimmy: /health; llama-server: its timings)`] : []),
        ...(CFG.cpuExclude.length ? [`CPU modules excluded for both servers: ${CFG.cpuExclude.join(', ')} (the reference build dies with SIGILL in its AMX kernels on this machine)`] : []),
        `Load average (1 min) at start / end: ${load0.toFixed(2)} / ${os.loadavg()[0].toFixed(2)} (the benchmark itself adds up to about ${CFG.threads})`,
    ];
    const report = `# Benchmark ${date}\n\n${header.map((h) => `${h}  `).join('\n')}\n\n${table}\n\n${notes.join('\n')}\n`;

    fs.mkdirSync(CFG.outDir, { recursive: true });
    const stem = `${date}${CFG.only ? `-${CFG.only}` : ''}${QUICK ? '-quick' : ''}`;
    const mdPath = path.join(CFG.outDir, `${stem}.md`);
    fs.writeFileSync(mdPath, report);
    fs.writeFileSync(path.join(CFG.outDir, `${stem}.json`), `${JSON.stringify({ cfg: CFG, machine: mach, release, noModel, results, sessions, spec, sizes }, null, 1)}\n`);
    if (!QUICK && !CFG.only && env.BENCH_DOCS !== '0') updateDocs(header, table, notes);

    // Aggregate tok/s vs concurrency for the plot: one block per model (gnuplot index).
    const dat = Object.entries(results).map(([name, res]) => {
        const rowsDat = [1, ...CFG.concurrency].map((c) =>
            `${c} ${fmt(median(res.shimmy.map((m) => m[`agg${c}`])), 2)} ${fmt(median(res['llama-server'].map((m) => m[`agg${c}`])), 2)}`);
        return `# ${name}\n# streams shimmy llama-server (tok/s)\n${rowsDat.join('\n')}`;
    }).join('\n\n\n');
    if (doModels) fs.writeFileSync(path.join(CFG.outDir, 'throughput.dat'), `${dat}\n`);

    console.log(`\n${header.join('\n')}\n\n${table}\n\n${notes.join('\n')}\n\nwritten: ${path.relative(ROOT, mdPath)}`);
}

(CFG.only === 'rpc' ? mainRpc() : main()).then(() => process.exit(0), (e) => {
    log(`error: ${e.stack || e.message}`);
    killAll();
    process.exit(1);
});
