#!/usr/bin/env python3
# ttft-ab.py N [LABEL=BIN[,ARG...] ...]: time to the first streamed token of shimmy (engine
# processes), shimmy --in-process, llama-server and any further shimmy builds, interleaved: per
# round, each server started fresh as `make bench` starts it (stories260K, 2 threads, 8 slots of
# 2048 tokens, the CPU module folders of deps/bench-run/ that a `make bench` with
# BENCH_CPU_EXCLUDE made), one warm-up, then 10 streamed completions of a ~40-token prompt (8
# tokens each), each on a new connection as make bench's are. Prints the median, p10 and p90 of
# all requests. Run from the repository root after a `make bench` made deps/bench-run.
import json, os, re, socket, statistics, subprocess, sys, time
from serverlib import free_port, health, start

M = os.path.join(os.environ.get('SHIMMY_TEST_MODELS', '../shared/models'), 'stories260K.gguf')
M = os.path.abspath(M)
PROMPT = ' '.join(['the little girl saw a big red ball in the park and she was happy'] * 3)
SHIMMY = os.path.abspath('build/shimmy')
SHIMMY_LIB = {'SHIMMY_BACKEND_DIR': os.path.abspath('deps/bench-run/shimmy-lib')}
REF = os.path.abspath('deps/bench-run/reference-bin/llama-server')


def ttft(port, k):
    """One streamed completion written in one send on a TCP_NODELAY socket (http.client writes
    the headers and the body apart, and Nagle then holds the body back): milliseconds from the
    send to the first data event with text."""
    body = json.dumps({'model': 'stories260k', 'prompt': '%d %s' % (k, PROMPT), 'max_tokens': 8,
                       'temperature': 0, 'stream': True}).encode()
    req = (b'POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n'
           b'Connection: close\r\nContent-Length: %d\r\n\r\n' % len(body)) + body
    s = socket.create_connection(('127.0.0.1', port), timeout=30)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    t0 = time.perf_counter()
    s.sendall(req)
    got, t = b'', None
    while t is None:
        chunk = s.recv(65536)
        if not chunk:
            break
        got += chunk
        for ev in re.findall(rb'data: (\{[^\n]*\})\n', got):
            if b'"text":""' not in ev:
                t = time.perf_counter()
                break
    while s.recv(65536):
        pass
    s.close()
    return (t - t0) * 1000


def shimmy(extra, binary=SHIMMY):
    return lambda p: ([binary, 'serve', '--model', M, '--bind', '127.0.0.1:%d' % p, '--threads', '2',
                       '--parallel', '8', '--ctx', '2048'] + extra, SHIMMY_LIB)


CFGS = {
    'shimmy': shimmy([]),
    'shimmy --in-process': shimmy(['--in-process']),
    'llama-server': lambda p: ([REF, '-m', M, '--host', '127.0.0.1', '--port', '%d' % p, '-np', '8',
                               '-c', '16384', '--no-kv-unified', '-t', '2', '-tb', '2', '--temp',
                               '0'], {}),
}
for a in sys.argv[2:]:  # LABEL=BIN[,ARG...]: more shimmy builds or arguments
    label, rest = a.split('=', 1)
    parts = rest.split(',')
    CFGS[label] = shimmy(parts[1:], os.path.abspath(parts[0]))
res = {k: [] for k in CFGS}
for i in range(int(sys.argv[1])):
    for name, cfg in CFGS.items():
        port = free_port()
        args, env = cfg(port)
        p = start(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             env=dict(os.environ, **env), cwd='/tmp')
        t0 = time.time()
        while not health(port):
            if p.poll() is not None or time.time() - t0 > 30:
                p.kill()
                sys.exit(name + ' did not start')
            time.sleep(0.005)
        try:
            ttft(port, 0)
            res[name] += [ttft(port, k) for k in range(1, 11)]
        finally:
            p.terminate()
            p.wait()
for k, v in res.items():
    v = sorted(v)
    print('%-20s TTFT median %.2f ms  p10 %.2f  p90 %.2f' % (k, statistics.median(v), v[len(v) // 10],
                                                           v[len(v) * 9 // 10]))
