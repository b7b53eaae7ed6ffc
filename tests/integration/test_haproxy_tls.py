#!/usr/bin/env python3
"""The sample HAProxy front (ops/haproxy/haulwatch-web.cfg) tested as shipped: a throwaway
self-signed certificate made with openssl, two `haulwatch web --cookie-secure true` processes on
loopback ports chosen here, a private Redis, a fresh database in the PostgreSQL of HW_TEST_PG, and
`haproxy -f CFG -db` with the addresses and the certificate given through the environment
variables the file reads. Through the TLS front (the client verifies the certificate):
plain HTTP is redirected to https; login sets a Secure cookie and /api/v1/me works with it;
requests are spread over both processes (HAProxy's own log names the server of each request);
stopping either process loses no request; a process whose /readyz fails (no Redis) gets no
traffic; the live feed (SSE) delivers an event; and HAProxy answers 429 past 20 logins in 10 s.

    test_haproxy_tls.py --haulwatch BIN --cfg FILE

A missing tool (haproxy, openssl, redis-server, psql) or HW_TEST_PG fails the test: it never
skips. Every process it starts is a child stopped by pid; the web processes must exit 0 on
SIGTERM (under ASan/UBSan a report at exit makes it non-zero)."""
import argparse
import http.client
import json
import os
import shutil
import socket
import ssl
import sys
import tempfile
import time

from hwproc import (  # the shared helpers, beside this file
    Fail, check, free_port, run, spawn, stop, stop_all, wait_port)

DB = "hw_test_haproxy"
USER, PASSWORD = "nj_view", "haproxy-test-pw"


def log(msg):
    print("test_haproxy_tls: " + msg, flush=True)


class Front:
    """HTTPS requests to the front, one TLS connection each (so that HAProxy chooses a server
    for each), verified against the throwaway certificate."""

    def __init__(self, port, cafile):
        self.port = port
        self.ctx = ssl.create_default_context(cafile=cafile)  # verifies chain and 127.0.0.1 SAN

    def conn(self, timeout=10):
        return http.client.HTTPSConnection("127.0.0.1", self.port, context=self.ctx, timeout=timeout)

    def request(self, method, path, body=None, headers=None):
        c = self.conn()
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            return r.status, r.headers, r.read()
        finally:
            c.close()


class HaproxyLog:
    """HAProxy's log (HW_HAPROXY_LOG=stdout): httplog lines name backend/server per request."""

    def __init__(self, path):
        self.path = path

    def text(self):
        with open(self.path, "r", errors="replace") as f:
            return f.read()

    def served(self):
        t = self.text()
        return {s: t.count(" haulwatch_web/%s " % s) for s in ("web1", "web2")}

    def wait_for(self, needle, timeout):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if needle in self.text():
                return
            time.sleep(0.1)
        raise Fail("HAProxy did not log %r within %.0f s" % (needle, timeout))


def redis_publish(port, channel, payload):
    """PUBLISH over RESP; returns the number of subscribers that received it."""
    parts = [b"PUBLISH", channel.encode(), payload.encode()]
    cmd = b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(cmd)
        reply = s.recv(64)
    check(reply.startswith(b":"), "PUBLISH answered %r" % reply)
    return int(reply[1:].strip())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--haulwatch", required=True)
    ap.add_argument("--cfg", required=True)
    args = ap.parse_args()

    pg_admin = os.environ.get("HW_TEST_PG")
    check(pg_admin, "HW_TEST_PG is not set (./ops/test sets it): this test needs a PostgreSQL")
    tools = {t: shutil.which(t) for t in ("haproxy", "openssl", "redis-server", "psql")}
    missing = [t for t, p in tools.items() if not p]
    check(not missing, "missing tools: %s (ops/lib.sh HW_DEPS installs them)" % " ".join(missing))

    tmp = tempfile.mkdtemp(prefix="hw-test-haproxy-")
    log("work dir %s" % tmp)
    ok = False
    try:
        body(args, pg_admin, tools, tmp)
        ok = True
    finally:
        stop_all()
        if ok:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            for name in sorted(os.listdir(tmp)):
                if name.endswith(".log"):
                    with open(os.path.join(tmp, name), errors="replace") as f:
                        tail = f.read()[-3000:]
                    print("---- %s (last 3000 bytes)\n%s" % (name, tail), flush=True)


def body(args, pg_admin, tools, tmp):
    # --- a throwaway certificate for 127.0.0.1, the key and certificate concatenated for HAProxy
    key, crt, pem = (os.path.join(tmp, n) for n in ("key.pem", "crt.pem", "haulwatch.pem"))
    run([tools["openssl"], "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", key, "-out", crt, "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"])
    with open(pem, "w") as out:
        for part in (crt, key):
            with open(part) as f:
                out.write(f.read())

    # --- a fresh database, one user, a private Redis
    run([tools["psql"], "-X", "-q", "-v", "ON_ERROR_STOP=1", pg_admin,
         "-c", "DROP DATABASE IF EXISTS %s WITH (FORCE)" % DB, "-c", "CREATE DATABASE %s" % DB])
    pg = "%s dbname=%s" % (pg_admin, DB)
    run([args.haulwatch, "migrate", "--pg", pg])
    env = dict(os.environ, HAULWATCH_PG=pg)
    run([args.haulwatch, "user", "add", USER, "--role", "viewer", "--region", "320100", "--password-stdin"],
        input=PASSWORD + "\n", env=env)
    redis_port = free_port()
    redis = spawn("redis", [tools["redis-server"], "--port", str(redis_port), "--bind", "127.0.0.1",
                            "--save", "", "--appendonly", "no"], os.path.join(tmp, "redis.log"))
    wait_port(redis_port, redis)

    web_ports = {"web1": free_port(), "web2": free_port()}

    def start_web(name, redis_addr="127.0.0.1:%d" % redis_port, wait_ready=True):
        port = web_ports[name]
        p = spawn(name, [args.haulwatch, "web", "--listen", "127.0.0.1:%d" % port, "--pg", pg,
                         "--redis", redis_addr, "--web-root", "", "--cookie-secure", "true"],
                  os.path.join(tmp, name + ".log"))
        wait_port(port, p)
        end = time.monotonic() + 20
        while wait_ready:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            c.request("GET", "/readyz")
            status = c.getresponse().status
            c.close()
            if status == 200:
                break
            check(time.monotonic() < end, "%s: /readyz still %d after 20 s" % (name, status))
            time.sleep(0.1)
        return p

    webs = {n: start_web(n) for n in ("web1", "web2")}

    def stop_web(name):
        rc = stop(webs.pop(name))
        check(rc == 0, "%s exited with status %s on SIGTERM (see %s.log)" % (name, rc, name))

    # --- HAProxy, the sample file as shipped, pointed at our ports by its environment variables
    tls_port, http_port = free_port(), free_port()
    henv = dict(os.environ, HW_WEB_TLS_BIND="127.0.0.1:%d" % tls_port,
                HW_WEB_HTTP_BIND="127.0.0.1:%d" % http_port, HW_WEB_CERT=pem,
                HW_WEB1="127.0.0.1:%d" % web_ports["web1"], HW_WEB2="127.0.0.1:%d" % web_ports["web2"],
                HW_HAPROXY_LOG="stdout")
    run([tools["haproxy"], "-c", "-f", args.cfg], env=henv)
    hlog = HaproxyLog(os.path.join(tmp, "haproxy.log"))
    haproxy = spawn("haproxy", [tools["haproxy"], "-f", args.cfg, "-db"], hlog.path, env=henv)
    wait_port(tls_port, haproxy)
    wait_port(http_port, haproxy)
    front = Front(tls_port, crt)

    # --- plain HTTP is redirected to https
    c = http.client.HTTPConnection("127.0.0.1", http_port, timeout=10)
    c.request("GET", "/api/v1/me")
    r = c.getresponse()
    check(r.status == 301, "plain HTTP answered %d, not 301" % r.status)
    check((r.getheader("Location") or "").startswith("https://"), "redirect to %r" % r.getheader("Location"))
    c.close()

    # --- login through TLS: a Secure cookie; /api/v1/me with it
    status, hdrs, data = front.request("POST", "/api/v1/login",
                                       json.dumps({"user": USER, "password": PASSWORD}),
                                       {"Content-Type": "application/json"})
    check(status == 200, "login answered %d: %r" % (status, data))
    cookie = hdrs.get("Set-Cookie") or ""
    flags = [f.strip() for f in cookie.split(";")]
    for flag in ("Secure", "HttpOnly", "SameSite=Strict"):
        check(flag in flags, "session cookie %r lacks %s" % (cookie, flag))
    check(hdrs.get("Strict-Transport-Security") == "max-age=31536000", "no HSTS header from the front")
    auth = {"Cookie": cookie.split(";")[0]}

    def me_ok(n, what):
        for i in range(n):
            status, _, data = front.request("GET", "/api/v1/me", headers=auth)
            check(status == 200, "%s: /api/v1/me request %d answered %d: %r" % (what, i + 1, status, data))
            check(json.loads(data)["user"] == USER, "%s: /api/v1/me said %r" % (what, data))

    # --- spread: each request on a new connection; leastconn takes turns between idle servers
    before = hlog.served()
    me_ok(10, "both up")
    time.sleep(0.3)  # the log lines of the last requests
    after = hlog.served()
    spread = {s: after[s] - before[s] for s in after}
    log("both up: requests served per process %s" % spread)
    check(spread["web1"] > 0 and spread["web2"] > 0, "requests not spread over both processes: %s" % spread)

    # --- web1 stops: nothing is lost (redispatch), then the health check takes it out
    stop_web("web1")
    before = hlog.served()
    me_ok(10, "web1 stopped")
    hlog.wait_for("haulwatch_web/web1 is DOWN", 10)
    time.sleep(0.3)
    after = hlog.served()
    check(after["web2"] - before["web2"] >= 10, "web2 did not serve the requests while web1 was stopped")

    # --- web1 back without Redis: it listens, but /readyz answers 503, so it gets nothing
    dead = free_port()
    webs["web1"] = start_web("web1", redis_addr="127.0.0.1:%d" % dead, wait_ready=False)
    c = http.client.HTTPConnection("127.0.0.1", web_ports["web1"], timeout=5)
    c.request("GET", "/readyz")
    r = c.getresponse()
    check(r.status == 503, "web1 without Redis: /readyz answered %d, not 503" % r.status)
    c.close()
    time.sleep(3.5)  # rise 2 x inter 1s: a TCP-only check would have taken it back by now
    before = hlog.served()
    me_ok(6, "web1 not ready")
    time.sleep(0.3)
    after = hlog.served()
    check(after["web1"] == before["web1"], "web1 served requests while its /readyz said 503")
    check("haulwatch_web/web1 is UP" not in hlog.text(), "HAProxy took web1 back while /readyz said 503")
    stop_web("web1")

    # --- web1 back, ready: the check takes it in; then web2 stops and web1 serves everything
    webs["web1"] = start_web("web1")
    hlog.wait_for("haulwatch_web/web1 is UP", 10)
    stop_web("web2")
    before = hlog.served()
    me_ok(10, "web2 stopped")
    time.sleep(0.3)
    after = hlog.served()
    check(after["web1"] - before["web1"] >= 10, "web1 did not serve the requests while web2 was stopped")
    log("failover both ways: ok; a process whose /readyz fails got no request")

    # --- the live feed through the front: an event of the user's city arrives, another city's not
    sc = front.conn(timeout=10)
    sc.request("GET", "/api/v1/stream", headers=dict(auth, Accept="text/event-stream"))
    sr = sc.getresponse()
    check(sr.status == 200, "stream answered %d" % sr.status)
    check((sr.getheader("Content-Type") or "").startswith("text/event-stream"), "stream content type")
    line = sr.readline()
    check(line.startswith(b"retry:"), "stream began with %r" % line)
    ev = {"ts_ms": int(time.time() * 1000), "lat": 32.05, "lon": 118.78, "speed_kmh": 61.0,
          "heading": 90, "alarm": 0, "status": 3, "moving": True, "enterprise": "NJ Freight"}
    batch = "\n".join(json.dumps(dict(ev, terminal_id=t, region=reg))
                      for t, reg in (("hz-other", "330102"), ("nj-front", "320102")))
    check(redis_publish(redis_port, "hw:positions", batch) >= 1, "no web process subscribed to hw:positions")
    got = []
    while not got:  # the socket's 10 s timeout bounds the wait
        line = sr.readline()
        check(line, "stream closed")
        if line.startswith(b"data:"):
            got.append(json.loads(line[5:]))
        elif line.strip() and not line.startswith((b":", b"id:", b"event:")):
            raise Fail("unexpected stream line %r" % line)
    # a positions batch: [[terminal_id, ts_ms, lat, lon, speed_kmh, heading], ...] of the user's
    # vehicles only
    check(got and [p[0] for p in got[0]] == ["nj-front"] and got[0][0][2:] == [32.05, 118.78, 61, 90],
          "first batch through the front was %r, expected nj-front's alone (hz-other is out of scope)" % got)
    sc.close()
    log("live feed through TLS: ok")

    # --- HAProxy's login limit: 429 once more than 20 logins came from one address in 10 s. The
    # bodies are malformed, so the web process answers 400 at once (no password check) until
    # HAProxy stops passing them on; its 429 is its own page, not haulwatch's JSON. The login at
    # the start may or may not still count in HAProxy's sliding window: the 429 is the 20th or
    # the 21st of these.
    first_429 = None
    for n in range(1, 31):
        status, _, data = front.request("POST", "/api/v1/login", "{", {"Content-Type": "application/json"})
        if status == 429:
            first_429 = n
            check(b"Too Many Requests" in data and not data.startswith(b"{"),
                  "the 429 did not come from HAProxy: %r" % data[:200])
            break
        check(status == 400, "malformed login %d answered %d: %r" % (n, status, data))
    check(first_429 is not None, "no 429 after 30 logins in a row")
    check(first_429 in (20, 21), "HAProxy answered 429 at login %d of a burst, its limit is 20" % first_429)
    status, _, data = front.request("POST", "/api/v1/login", "{", {"Content-Type": "application/json"})
    check(status == 429, "login after the limit answered %d" % status)
    me_ok(1, "after the login limit")
    log("login rate limit: 429 from HAProxy at login %d of the burst; other paths unaffected" % first_429)

    stop(haproxy)
    stop_web("web1")
    log("ok")


if __name__ == "__main__":
    try:
        main()
    except Fail as e:
        print("test_haproxy_tls: FAIL: %s" % e, flush=True)
        sys.exit(1)
