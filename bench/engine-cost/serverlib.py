# serverlib.py: what the engine-cost scripts share to start and probe a server.
import http.client, socket


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
