#!/usr/bin/env python3
# token-cost.py [--in-process] [--tool perf|strace|callgrind] [--tokens N] [--threads T] BIN: what
# one streamed greedy request of N tokens (default 2000) on stories260K costs per generated token,
# in the server process and in the model's engine process (none with --in-process), with T
# compute threads (default 1: ggml's spinning workers would blur the counts). The server is
# started and warmed up (one short request) first; only the measured request is counted.
#   perf      (default) context switches (perf stat -e context-switches, new threads included;
#             the voluntary ones, a thread going to sleep, from /proc/PID/task/*/status sampled
#             every 20 ms) and CPU time (utime + stime from /proc/PID/stat, exited threads
#             included). Under load most of perf's count is preemption: read the voluntary one.
#   strace    system calls (strace -f -c attached to each process)
#   callgrind instructions (the server and its engine process each under valgrind
#             --tool=callgrind, the latter through the LD_PRELOAD shim spawnwrap.c; counters
#             zeroed before the request and dumped after it with callgrind_control)
# Also prints the request's wall time, tokens/s and time to the first token (noisy on a busy
# machine, and meaningless under callgrind). Needs perf/strace/valgrind on PATH for the tool.
import glob, http.client, json, os, re, signal, socket, subprocess, sys, tempfile, threading, time
from serverlib import free_port

args = sys.argv[1:]
in_process = '--in-process' in args
tool, n_tok, threads = 'perf', 2000, '1'
if '--tool' in args:
    tool = args[args.index('--tool') + 1]
if '--threads' in args:
    threads = args[args.index('--threads') + 1]
if '--tokens' in args:
    n_tok = int(args[args.index('--tokens') + 1])
BIN = os.path.abspath(args[-1])
MODEL = os.path.join(os.environ.get('SHIMMY_TEST_MODELS', '../shared/models'), 'stories260K.gguf')
TMP = tempfile.mkdtemp(prefix='token-cost-')


def get(port, path):
    c = http.client.HTTPConnection('127.0.0.1', port, timeout=5)
    c.request('GET', path)
    r = c.getresponse()
    return r.status, r.read()


def stream(port, n):
    """One streamed greedy completion: (tokens, seconds, seconds to the first text)."""
    body = json.dumps({'model': 'stories260k', 'prompt': 'Once upon a time', 'max_tokens': n,
                       'temperature': 0, 'stream': True,
                       'stream_options': {'include_usage': True}})
    c = http.client.HTTPConnection('127.0.0.1', port, timeout=600)
    t0 = time.perf_counter()
    c.request('POST', '/v1/completions', body, {'Content-Type': 'application/json'})
    r = c.getresponse()
    assert r.status == 200, r.status
    first, usage = None, None
    for line in r:
        if not line.startswith(b'data: {'):
            continue
        d = json.loads(line[6:])
        if first is None and d.get('choices') and d['choices'][0].get('text'):
            first = time.perf_counter() - t0
        if d.get('usage'):
            usage = d['usage']['completion_tokens']
    return usage, time.perf_counter() - t0, first


def task_switches(pid):
    """{tid: voluntary context switches} of the process's threads now."""
    out = {}
    for st in glob.glob('/proc/%d/task/*/status' % pid):
        try:
            for line in open(st):
                if line.startswith('voluntary_ctxt_switches'):
                    out[st.split('/')[4]] = int(line.split()[1])
        except OSError:
            pass  # the thread ended
    return out


class Sampler(threading.Thread):
    """Voluntary context switches (the thread went to sleep: a wait, a blocking read) of every
    thread of pids, sampled every 20 ms so that a thread that ends during the request still
    counts (up to its last sample)."""

    def __init__(self, pids):
        super().__init__(daemon=True)
        self.pids, self.first, self.last, self.stop = pids, {}, {}, threading.Event()
        for pid in pids:
            self.first[pid] = task_switches(pid)
            self.last[pid] = dict(self.first[pid])

    def run(self):
        while not self.stop.wait(0.02):
            self.sample()

    def sample(self):
        for pid in self.pids:
            self.last[pid].update(task_switches(pid))

    def total(self, pid):
        self.sample()
        return sum(v - self.first[pid].get(t, 0) for t, v in self.last[pid].items())


def cpu_s(pid):
    f = open('/proc/%d/stat' % pid).read().rsplit(')', 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf('SC_CLK_TCK')


def start():
    port = free_port()
    cmd = [BIN, 'serve', '--model', MODEL, '--bind', '127.0.0.1:%d' % port, '--log-level', 'warn',
           '--threads', threads]
    if in_process:
        cmd.append('--in-process')
    env = dict(os.environ)
    if tool == 'callgrind':
        cmd = ['valgrind', '--tool=callgrind', '--callgrind-out-file=%s/cg.%%p' % TMP] + cmd
        # valgrind cannot follow posix_spawn("/proc/self/exe"): the shim runs each engine
        # process under a callgrind of its own
        shim = os.path.join(TMP, 'spawnwrap.so')
        subprocess.run(['cc', '-shared', '-fPIC', '-O2', '-o', shim,
                        os.path.join(os.path.dirname(os.path.abspath(__file__)), 'spawnwrap.c'),
                        '-ldl'], check=True)
        env.update(LD_PRELOAD=shim, SPAWNWRAP_EXE=BIN, SPAWNWRAP_OUT='%s/cg.%%p' % TMP)
    log = open(os.path.join(TMP, 'server.log'), 'w')
    p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    deadline = time.time() + (120 if tool == 'callgrind' else 20)
    while time.time() < deadline:
        try:
            st, body = get(port, '/health')
            h = json.loads(body)
            if st == 200 and h['models'] and h['models'][0].get('loaded'):
                return p, port, h['models'][0].get('engine_pid', 0)
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.05)
    p.kill()
    sys.exit('the server did not start: see %s/server.log' % TMP)


def attach(pids):
    procs = []
    for pid in pids:
        if tool == 'perf':
            cmd = ['perf', 'stat', '-x', ',', '-e', 'context-switches', '-p', str(pid),
                   '-o', '%s/perf.%d' % (TMP, pid)]
        else:
            cmd = ['strace', '-f', '-c', '-o', '%s/strace.%d' % (TMP, pid), '-p', str(pid)]
        procs.append(subprocess.Popen(cmd, stderr=subprocess.DEVNULL))
    time.sleep(1.0)  # attached to every thread
    return procs


def detach(procs):
    for p in procs:
        p.send_signal(signal.SIGINT)
        p.wait()


def perf_cs(pid):
    for line in open('%s/perf.%d' % (TMP, pid)):
        f = line.split(',')
        if len(f) > 2 and f[2] == 'context-switches':
            return int(f[0])
    return -1


def strace_calls(pid):
    calls, total = {}, 0
    for line in open('%s/strace.%d' % (TMP, pid)):
        f = line.split()
        if len(f) >= 5 and f[0][0].isdigit() and f[-1] != 'total':
            calls[f[-1]] = int(f[3])
        elif f and f[-1] == 'total':
            total = int(f[3])
    return total, calls


def callgrind_zero_dump(pids, port):
    for pid in pids:
        subprocess.run(['callgrind_control', '-z', str(pid)], check=True, capture_output=True)
    res = stream(port, n_tok)
    for pid in pids:
        subprocess.run(['callgrind_control', '-d', str(pid)], check=True, capture_output=True)
    out = {}
    for pid in pids:
        dumps = sorted(glob.glob('%s/cg.%d.*' % (TMP, pid)), key=os.path.getmtime)
        text = open(dumps[-1]).read()
        m = re.search(r'^summary:\s*(\d+)', text, re.M) or re.search(r'^totals:\s*(\d+)', text,
                                                                        re.M)
        out[pid] = int(m.group(1))
    return res, out


p, port, child = start()
pids = [('server', p.pid)]  # under callgrind too: valgrind runs the program in its process
if child:
    pids.append(('engine process', child))
stream(port, 32)  # warm-up
try:
    if tool == 'callgrind':
        (tokens, secs, ttft), ins = callgrind_zero_dump([pid for _, pid in pids], port)
        for name, pid in pids:
            print('%-15s %12d instructions  %8.0f per token' % (name, ins[pid], ins[pid] / tokens))
    else:
        before = {pid: cpu_s(pid) for _, pid in pids}
        procs = attach([pid for _, pid in pids])
        sampler = Sampler([pid for _, pid in pids])
        sampler.start()
        tokens, secs, ttft = stream(port, n_tok)
        after = {pid: cpu_s(pid) for _, pid in pids}
        vol = {pid: sampler.total(pid) for _, pid in pids}
        sampler.stop.set()
        detach(procs)
        for name, pid in pids:
            if tool == 'perf':
                cs = perf_cs(pid)
                print('%-15s %7d context switches (%.2f per token; voluntary %.2f), CPU %.3f s '
                      '(%.1f us per token)' % (name, cs, cs / tokens, vol[pid] / tokens,
                                                after[pid] - before[pid],
                                                (after[pid] - before[pid]) * 1e6 / tokens))
            else:
                total, calls = strace_calls(pid)
                top = sorted(calls.items(), key=lambda kv: -kv[1])[:6]
                print('%-15s %7d system calls (%.2f per token): %s' % (
                    name, total, total / tokens,
                    ', '.join('%s %.2f' % (k, v / tokens) for k, v in top)))
    print('%d tokens in %.3f s (%.0f tok/s), first token %.1f ms%s' % (
        tokens, secs, tokens / secs, (ttft or 0) * 1e3,
        ' (under %s)' % tool if tool != 'perf' else ''))
finally:
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()
