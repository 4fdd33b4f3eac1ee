#!/usr/bin/env python3
# ttft-ab.py N: time to the first streamed token of shimmy (engine processes), shimmy
# --in-process and llama-server, interleaved: per round, each server started fresh as `make
# bench` starts it (stories260K, 2 threads, 8 slots of 2048 tokens, the CPU module folders of
# deps/bench-run/ that a `make bench` with BENCH_CPU_EXCLUDE made), one warm-up, then 10
# streamed completions of a ~40-token prompt (8 tokens each). Prints the median, p10 and p90 of
# all requests. Run from the repository root after a `make bench` made deps/bench-run.
import http.client, json, os, statistics, subprocess, sys, time
from serverlib import free_port, health

M = os.path.join(os.environ.get('SHIMMY_TEST_MODELS', '../shared/models'), 'stories260K.gguf')
M = os.path.abspath(M)
PROMPT = ' '.join(['the little girl saw a big red ball in the park and she was happy'] * 3)
SHIMMY = os.path.abspath('build/shimmy')
SHIMMY_LIB = {'SHIMMY_BACKEND_DIR': os.path.abspath('deps/bench-run/shimmy-lib')}
REF = os.path.abspath('deps/bench-run/reference-bin/llama-server')


def ttft(port, k):
    c = http.client.HTTPConnection('127.0.0.1', port, timeout=30)
    body = json.dumps({'model': 'stories260k', 'prompt': '%d %s' % (k, PROMPT), 'max_tokens': 8,
                       'temperature': 0, 'stream': True})
    t0 = time.perf_counter()
    c.request('POST', '/v1/completions', body, {'Content-Type': 'application/json'})
    r = c.getresponse()
    t = None
    while True:
        line = r.readline()
        if not line:
            break
        if t is None and line.startswith(b'data: {') and b'"text":""' not in line:
            t = time.perf_counter()
    c.close()
    return (t - t0) * 1000


def shimmy(extra):
    return lambda p: ([SHIMMY, 'serve', '--model', M, '--bind', '127.0.0.1:%d' % p, '--threads', '2',
                       '--parallel', '8', '--ctx', '2048'] + extra, SHIMMY_LIB)


CFGS = {
    'shimmy': shimmy([]),
    'shimmy --in-process': shimmy(['--in-process']),
    'llama-server': lambda p: ([REF, '-m', M, '--host', '127.0.0.1', '--port', '%d' % p, '-np', '8',
                               '-c', '16384', '--no-kv-unified', '-t', '2', '-tb', '2', '--temp',
                               '0'], {}),
}
res = {k: [] for k in CFGS}
for i in range(int(sys.argv[1])):
    for name, cfg in CFGS.items():
        port = free_port()
        args, env = cfg(port)
        p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             env=dict(os.environ, **env), cwd='/tmp', start_new_session=True)
        t0 = time.time()
        while not health(port):
            if p.poll() is not None or time.time() - t0 > 30:
                sys.exit(name + ' did not start')
            time.sleep(0.005)
        ttft(port, 0)
        res[name] += [ttft(port, k) for k in range(1, 11)]
        p.terminate()
        p.wait()
for k, v in res.items():
    v = sorted(v)
    print('%-20s TTFT median %.2f ms  p10 %.2f  p90 %.2f' % (k, statistics.median(v), v[len(v) // 10],
                                                           v[len(v) * 9 // 10]))
