#!/usr/bin/env python3
"""startup_time.py: how long `shimmy serve` takes from exec to its first 200 on GET /health, with
no model (an empty HOME and working directory, so discovery finds nothing).

Each run: pick a free loopback port, start the binary, poll the port (connect + GET /health) every
0.2 ms until it answers 200 (deadline 10 s), record the wall time and the CPU time the process's
threads used until then (/proc/PID/task/*/schedstat: less sensitive to a loaded machine than wall
time), send SIGTERM, wait. Prints the runs, then medians, minimum and maximum in milliseconds;
with --max-ms M exits 1 when the median is above M: the median wall time, or with --gate cpu the
median CPU time (start-up is one thread doing work, so on an idle machine the two are close; on
a machine shared by other jobs only the CPU time still measures shimmy).

Usage: scripts/startup_time.py BINARY [--runs N] [--max-ms M] [--gate wall|cpu]
"""
import argparse
import http.client
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ready(port):
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        c.request("GET", "/health")
        ok = c.getresponse().status == 200
        c.close()
        return ok
    except OSError:
        return False


def cpu_ms(pid):
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                total += int(f.read().split()[0])
        except OSError:
            pass
    return total / 1e6


def one_run(binary, home):
    port = free_port()
    env = {"PATH": "/usr/bin:/bin", "HOME": home}
    t0 = time.perf_counter()
    p = subprocess.Popen([binary, "serve", "--bind", f"127.0.0.1:{port}"], cwd=home, env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = t0 + 10
    try:
        while time.perf_counter() < deadline:
            if p.poll() is not None:
                raise RuntimeError(f"shimmy exited with {p.returncode} before it was ready")
            if ready(port):
                return (time.perf_counter() - t0) * 1000, cpu_ms(p.pid)
            time.sleep(0.0002)
        raise RuntimeError("not ready within 10 s")
    finally:
        p.terminate()
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--max-ms", type=float)
    ap.add_argument("--gate", choices=["wall", "cpu"], default="wall")
    a = ap.parse_args()
    a.binary = os.path.abspath(a.binary)
    with tempfile.TemporaryDirectory(prefix="shimmy-startup-") as home:
        one_run(a.binary, home)  # warm the page cache: the first exec reads the libraries
        runs = [one_run(a.binary, home) for _ in range(a.runs)]
    times = [r[0] for r in runs]
    cpu = [r[1] for r in runs]
    med = statistics.median(times)
    print("start-up to ready, wall (ms): " + " ".join(f"{t:.1f}" for t in times))
    print(f"median {med:.1f} ms wall (min {min(times):.1f}, max {max(times):.1f}), "
          f"median {statistics.median(cpu):.1f} ms CPU ({a.runs} runs)")
    gated = med if a.gate == "wall" else statistics.median(cpu)
    if a.max_ms is not None and gated > a.max_ms:
        print(f"startup_time.py: median {a.gate} time {gated:.1f} ms is above the gate of "
              f"{a.max_ms:g} ms", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
