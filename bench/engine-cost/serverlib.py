# serverlib.py: what the engine-cost scripts share to start and probe a server.
import atexit, http.client, os, signal, socket, subprocess


def free_port():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    p = s.getsockname()[1]
    s.close()
    return p


def health(port):
    """True when GET /health answers 200."""
    try:
        c = http.client.HTTPConnection('127.0.0.1', port, timeout=1)
        c.request('GET', '/health')
        r = c.getresponse()
        r.read()
        return r.status == 200
    except OSError:
        return False


_started = []


def start(args, **kw):
    """subprocess.Popen(args, **kw) in a session of its own, killed (with its engine processes) when
    the script ends, however it ends."""
    p = subprocess.Popen(args, start_new_session=True, **kw)
    _started.append(p)
    return p


@atexit.register
def _stop_all():
    for p in _started:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except OSError:
                pass
            p.wait()
