#!/usr/bin/env python3
# decode-ab.py N LABEL=BIN[,ARG...] ...: decode speed of configurations, interleaved. Per round,
# each configuration in turn: `BIN serve --model stories260K (or $MODEL) --threads 2 --parallel 8 --ctx 2048
# ARGS` (the CPU modules of BIN's lib/ less sapphirerapids, as make bench runs them here), one
# warm-up, then 10 ($REQS) streamed greedy requests of 64 tokens (tokens/s from the first token to the
# last, counting usage.completion_tokens as make bench does, "decode, single stream") then 4 and 8 streams at once (aggregate tokens/s).
# The median time to the first token of the 10 streams. Also 10 streamed /api/generate requests of 64 tokens: tokens/s from the engine's own
# eval_duration (compute slowed, or only the delivery?). Prints medians over all requests and rounds, and the ratio of each configuration to the first.
import http.client, json, os, socket, statistics, subprocess, sys, tempfile, threading, time
from serverlib import free_port, health, start
N = int(sys.argv[1])
cfgs = []
for a in sys.argv[2:]:
    label, rest = a.split('=', 1); parts = rest.split(','); cfgs.append((label, parts[0], parts[1:]))
MODEL = os.environ.get('MODEL') or os.path.join(os.environ.get('SHIMMY_TEST_MODELS', '../shared/models'), 'stories260K.gguf')
NAME = os.path.basename(MODEL)[:-5].lower()
REQS = int(os.environ.get('REQS', '10'))
EXCLUDE = os.environ.get('EXCLUDE', 'sapphirerapids')
def stream(port, k, out):
    c = http.client.HTTPConnection('127.0.0.1', port, timeout=30)
    body = json.dumps({'model': NAME, 'prompt': 'Once upon a time, %d' % k, 'max_tokens': 64,
                       'temperature': 0, 'stream': True, 'ignore_eos': True,
                       'stream_options': {'include_usage': True}})
    t0 = time.perf_counter()
    c.request('POST', '/v1/completions', body, {'Content-Type': 'application/json'})
    r = c.getresponse(); assert r.status == 200, r.status
    ts, n = [], 0
    while True:
        line = r.readline()
        if not line or line.startswith(b'data: [DONE]'): break
        if line.startswith(b'data: {') and b'"text":""' not in line: ts.append(time.perf_counter())
        if line.startswith(b'data: {') and b'"usage":{' in line: n = json.loads(line[6:])['usage']['completion_tokens']
    c.close()
    out.append((n, ts[0], ts[-1], ts[0] - t0))
def moddir(b):
    d = tempfile.mkdtemp(prefix='decode-ab-'); lib = os.path.join(os.path.dirname(os.path.abspath(b)), 'lib')
    for f in os.listdir(lib):
        if f.startswith('libggml-cpu-') and EXCLUDE not in f: os.symlink(os.path.join(lib, f), os.path.join(d, f))
    return d
def ollama(port, k):
    c = http.client.HTTPConnection('127.0.0.1', port, timeout=30)
    body = json.dumps({'model': NAME, 'prompt': 'Once upon a time, %d' % k, 'stream': True,
                       'options': {'num_predict': 64, 'temperature': 0}})
    c.request('POST', '/api/generate', body); r = c.getresponse(); assert r.status == 200, r.status
    last = None
    for line in r:
        last = json.loads(line)
    c.close()
    return last['eval_count'] / (last['eval_duration'] / 1e9)
res = {c[0]: {'single': [], 'agg4': [], 'agg8': [], 'engine': [], 'ttft': []} for c in cfgs}
dirs = {c[0]: moddir(c[1]) for c in cfgs}
for i in range(N):
    for label, b, extra in cfgs:
        port = free_port()
        args = [b, 'serve', '--model', MODEL, '--bind', '127.0.0.1:%d' % port, '--threads', os.environ.get('THREADS', '2'),
                '--parallel', '8', '--ctx', '2048'] + extra
        p = start(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             env=dict(os.environ, SHIMMY_BACKEND_DIR=dirs[label]))
        t0 = time.perf_counter()
        while not health(port):
            if p.poll() is not None or time.perf_counter() - t0 > 30: sys.exit('server did not start')
            time.sleep(0.002)
        stream(port, 0, [])
        for k in range(REQS):
            o = []; stream(port, k + 1, o); n, a, z, ttft = o[0]
            res[label]['single'].append((n - 1) / (z - a))
            res[label]['ttft'].append(ttft * 1000)
        for k in range(REQS):
            res[label]['engine'].append(ollama(port, 200 + k))
        for c in (4, 8):
            o = []; th = [threading.Thread(target=stream, args=(port, 100 * c + k, o)) for k in range(c)]
            t0 = time.perf_counter(); [t.start() for t in th]; [t.join() for t in th]
            res[label]['agg%d' % c].append(sum(x[0] for x in o) / (max(x[2] for x in o) - t0))
        p.terminate(); p.wait()
base = None
for label, r in res.items():
    s, a, a8, e, t = (statistics.median(r[k]) for k in ('single', 'agg4', 'agg8', 'engine', 'ttft'))
    base = base or (s, a, a8, e, t)
    print('%-8s single %6.0f tok/s (%.3f)  4 streams %6.0f (%.3f)  8 streams %6.0f (%.3f)  engine-timed %6.0f (%.3f)  TTFT %5.2f ms (%.3f)' %
          (label, s, s / base[0], a, a / base[1], a8, a8 / base[2], e, e / base[3], t, t / base[4]))
