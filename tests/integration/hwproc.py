"""What the Python integration tests share (test_haproxy_tls.py, test_many_nodes.py): failing with
a message, ports for the servers they start, and their child processes, each stopped by pid.

Ports come from below the kernel's ephemeral range (ip_local_port_range): a port the kernel
picks for bind(0) is one it also hands to outgoing connections, and a test beside this one (a
simulator opens thousands) could take it between the choice and the server's bind. The choice is
random and checked free, like ops/lib.sh hw_free_port and the C harness."""

import random
import socket
import subprocess
import time

CHILDREN = []  # [name, Popen] in start order; stopped in reverse by stop_all
_CHOSEN = set()  # ports this process handed out: never twice


class Fail(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Fail(what)


def _port_range():
    lo, hi = 20000, 32767
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            eph_lo, eph_hi = (int(x) for x in f.read().split())
        if eph_lo - 1 >= lo + 1000:
            hi = eph_lo - 1
        else:
            lo, hi = eph_hi + 1, 65000
    except (OSError, ValueError):
        pass
    return lo, hi


def free_port():
    lo, hi = _port_range()
    rng = random.SystemRandom()
    for _ in range(1000):
        port = rng.randint(lo, hi)
        if port in _CHOSEN:
            continue
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            s.close()
        _CHOSEN.add(port)
        return port
    raise Fail("no free port in %d-%d" % (lo, hi))


def wait_port(port, proc, timeout=20.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        check(proc.poll() is None, "process exited (status %s) before listening on %d" % (proc.returncode, port))
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise Fail("nothing listens on 127.0.0.1:%d after %.0f s" % (port, timeout))


def spawn(name, argv, logpath, env=None):
    with open(logpath, "ab") as f:
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT, env=env)
    CHILDREN.append([name, p])
    return p


def forget(p):
    """p is no longer ours to stop (it was killed and reaped on purpose)."""
    for entry in CHILDREN:
        if entry[1] is p:
            CHILDREN.remove(entry)
            break


def stop(p, timeout=20.0):
    """SIGTERM, SIGKILL after timeout; returns the exit status."""
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    forget(p)
    return p.returncode


def stop_all():
    while CHILDREN:
        stop(CHILDREN[-1][1])


def run(argv, **kw):
    r = subprocess.run(argv, capture_output=True, text=True, **kw)
    check(r.returncode == 0, "%s failed (%d): %s" % (" ".join(argv[:3]), r.returncode, r.stderr.strip()))
    return r.stdout
