#!/usr/bin/env python3
# cmp.py N LABEL=BIN[,ARG...] ...: per round, each configuration in turn: start `BIN serve --model
# stories260K ARGS`, time spawn -> first /health 200 (polled every 1 ms), then 20 one-token
# requests (median latency) and 20 streamed requests (median time to the first SSE data line),
# then SIGTERM. Prints medians over rounds. Also the server's VmRSS after /health.
import os, socket, subprocess, sys, time, statistics, json, http.client
from serverlib import free_port, health, start
N = int(sys.argv[1])
cfgs = []
for a in sys.argv[2:]:
    label, rest = a.split('=', 1); parts = rest.split(','); cfgs.append((label, parts[0], parts[1:]))
MODEL = os.path.join(os.environ.get('SHIMMY_TEST_MODELS', '../shared/models'), 'stories260K.gguf')
def req(port, k, stream):
    c = http.client.HTTPConnection('127.0.0.1', port, timeout=10)
    body = json.dumps({'model': 'stories260k', 'prompt': '%d Once upon a time' % k,
                       'max_tokens': 16 if stream else 1, 'temperature': 0, 'stream': stream})
    t0 = time.perf_counter()
    c.request('POST', '/v1/completions', body, {'Content-Type': 'application/json'})
    r = c.getresponse(); assert r.status == 200, r.status
    if stream:
        while True:
            line = r.readline()
            if line.startswith(b'data: {') and b'"text":""' not in line: break
        dt = time.perf_counter() - t0; r.read()
    else:
        r.read(); dt = time.perf_counter() - t0
    c.close(); return dt * 1000
def rss(pid):
    for l in open('/proc/%d/status' % pid):
        if l.startswith('VmRSS:'): return int(l.split()[1]) / 1024
res = {c[0]: {'start': [], 'one': [], 'ttft': [], 'rss': []} for c in cfgs}
for i in range(N):
    for label, b, extra in cfgs:
        port = free_port()
        args = [b, 'serve', '--model', MODEL, '--bind', '127.0.0.1:%d' % port] + extra
        t0 = time.perf_counter()
        p = start(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while not health(port):
            if p.poll() is not None: sys.exit('server died')
            if time.perf_counter() - t0 > 30: sys.exit('timeout')
            time.sleep(0.001)
        st = (time.perf_counter() - t0) * 1000
        r = res[label]; r['start'].append(st); r['rss'].append(rss(p.pid))
        req(port, 0, False)
        r['one'].append(statistics.median(req(port, k, False) for k in range(1, 21)))
        r['ttft'].append(statistics.median(req(port, k, True) for k in range(21, 41)))
        p.terminate(); p.wait()
for label, r in res.items():
    print('%-10s start-up %6.1f ms   1-token request %5.2f ms   streamed TTFT %5.2f ms   server RSS %.1f MiB' %
          (label, statistics.median(r['start']), statistics.median(r['one']), statistics.median(r['ttft']), statistics.median(r['rss'])))
