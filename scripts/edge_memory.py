#!/usr/bin/env python3
"""Measures errand's resident memory under the two edge loads of issue 8.

  idle N       : N silent TCP connections held open, then closed.
  batch C      : C concurrent batch enqueues of 10,000 jobs, each payload a 3,000-element
                 array (~60 MB body); peak RSS sampled while they run.

Starts `errand serve` (path in ERRAND_BIN, default target/debug/errand) on a temporary data
directory and 127.0.0.1:0, prints RSS in MiB, and stops the server. Loopback only, bounded.
"""
import json, os, socket, subprocess, sys, tempfile, threading, time

def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0

def start(extra):
    binary = os.environ.get("ERRAND_BIN", "target/debug/errand")
    data = tempfile.mkdtemp()
    p = subprocess.Popen([binary, "serve", "--listen", "127.0.0.1:0", "--data-dir", data] + extra,
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    first = p.stdout.readline()
    url = [w for w in first.split() if w.startswith("http://")][0]
    host, port = url[len("http://"):].split(":")
    threading.Thread(target=lambda: [None for _ in p.stdout], daemon=True).start()
    return p, host, int(port)

def idle(n, extra):
    p, host, port = start(extra)
    time.sleep(0.5)
    before = rss_mib(p.pid)
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.settimeout(5)
        s.connect((host, port))
        socks.append(s)
    time.sleep(2)
    held = rss_mib(p.pid)
    for s in socks:
        s.close()
    time.sleep(2)
    after = rss_mib(p.pid)
    p.terminate(); p.wait(10)
    print(f"idle connections={n}: before {before:.1f} MiB, holding {held:.1f} MiB "
          f"({(held - before) * 1024 / max(n, 1):.1f} KiB each), after closing {after:.1f} MiB")

def batch_body():
    payload = [1] * 3000
    jobs = [{"kind": "k", "queue": "q", "payload": payload} for _ in range(10000)]
    return json.dumps({"jobs": jobs}, separators=(",", ":")).encode()

def post(host, port, body, out):
    s = socket.create_connection((host, port), timeout=600)
    s.sendall(b"POST /v1/jobs/batch HTTP/1.1\r\nhost: %s:%d\r\ncontent-type: application/json\r\n"
              b"content-length: %d\r\nconnection: close\r\n\r\n" % (host.encode(), port, len(body)))
    try:
        s.sendall(body)
    except (BrokenPipeError, ConnectionResetError):
        pass  # answered before the whole body was taken (413, 503 busy): read that answer
    data = b""
    while True:
        try:
            chunk = s.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    out.append(data.split(b"\r\n", 1)[0].decode() or "no answer")
    s.close()

def batch(c, extra):
    body = batch_body()
    p, host, port = start(extra + ["--max-request-bytes", str(len(body) + 1024)])
    time.sleep(0.5)
    before = rss_mib(p.pid)
    peak = before
    out = []
    threads = [threading.Thread(target=post, args=(host, port, body, out)) for _ in range(c)]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        peak = max(peak, rss_mib(p.pid))
        time.sleep(0.05)
    p.terminate(); p.wait(30)
    statuses = {k: out.count(k) for k in sorted(set(out))}
    print(f"batch concurrent={c} body={len(body) / 1e6:.1f} MB: before {before:.1f} MiB, "
          f"peak {peak:.1f} MiB; answers {statuses}")

if __name__ == "__main__":
    what, n = sys.argv[1], int(sys.argv[2])
    extra = sys.argv[3:]
    {"idle": idle, "batch": batch}[what](n, extra)
