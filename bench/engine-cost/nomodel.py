#!/usr/bin/env python3
# nomodel.py N LABEL=BIN ...: `BIN serve` with no model: spawn -> first /health 200, and the
# server's VmRSS then (median over N interleaved rounds); also the number of processes it runs.
import socket, subprocess, sys, time, statistics, http.client, os
from serverlib import free_port, health
N = int(sys.argv[1]); cfgs = [a.split('=', 1) for a in sys.argv[2:]]
def rss(pid):
    for l in open('/proc/%d/status' % pid):
        if l.startswith('VmRSS:'): return int(l.split()[1]) / 1024
def children(pid):
    out = []
    for d in os.listdir('/proc'):
        if d.isdigit():
            try:
                st = open('/proc/%s/stat' % d).read(); ppid = int(st.rsplit(')', 1)[1].split()[1])
                if ppid == pid: out.append(int(d))
            except OSError: pass
    return out
res = {l: ([], [], []) for l, _ in cfgs}
empty = os.path.join(os.environ.get('TMPDIR', '/tmp'), 'engine-cost-empty'); os.makedirs(empty, exist_ok=True)
for i in range(N):
    for label, b in cfgs:
        port = free_port(); t0 = time.perf_counter()
        p = subprocess.Popen([b, 'serve', '--bind', '127.0.0.1:%d' % port], cwd=empty,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        while not health(port):
            if p.poll() is not None: sys.exit('died')
            time.sleep(0.001)
        res[label][0].append((time.perf_counter() - t0) * 1000)
        time.sleep(0.5)  # the warm engine process finishes its start-up
        res[label][1].append(rss(p.pid))
        res[label][2].append(sum(rss(c) for c in children(p.pid)))
        p.terminate(); p.wait()
for l, (st, r, cr) in res.items():
    print('%-8s no model: start-up %.1f ms, server RSS %.1f MiB, its children %.1f MiB' %
          (l, statistics.median(st), statistics.median(r), statistics.median(cr)))
