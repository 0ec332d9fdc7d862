#!/usr/bin/env python3
"""Interleaved A/B of proxy variants, for comparing small changes on a noisy box.

Run it as root inside a network namespace of its own, so that the TCP segment
counters of /proc/net/snmp count only this test's traffic:

  unshare -n proxy/bench/ab.py -d 5 -r 8 -c "50 200" \
    'old|28291|env RUST_LOG=warn /tmp/old-halyard-proxy --config /tmp/http1.toml' \
    'new|28292|env RUST_LOG=warn target/release/halyard-proxy --config /tmp/http2.toml' \
    'haproxy|28080|haproxy -db -f ../shared/anchors/proxy/configs/haproxy-http.cfg'

It brings up lo, starts one nginx shaped like the anchor harness's (backends
127.0.0.1:18081-18083, 128-byte index, sendfile on, tcp_nodelay on), starts
each target (name|port|command; BENCH_RUN is set for the HAProxy configs),
then for each rep and concurrency runs a 1 s warm-up and a wrk -t1 run on
each target in rotated order, and reports per run and as medians: proxy CPU
microseconds per request (from /proc/PID/task/*/schedstat), user and system
microseconds per request (utime/stime), TCP segments sent per request in the
namespace, req/s and p99. Loopback only; every step is bounded by -d.

With -q PCT, every thread of every target is put in a cgroup (v1 cpu
controller) of its own, capped at PCT% of a core (quota per 10 ms period):
a fixed CPU budget per thread, so that req/s with 2 threads against 1 shows
how a proxy scales when wrk and nginx have the rest of the box.
"""
import os, sys, subprocess, time, re, statistics as st, argparse, signal, glob
ap = argparse.ArgumentParser()
ap.add_argument('-d', type=float, default=5); ap.add_argument('-r', type=int, default=3)
ap.add_argument('-c', default="50 200"); ap.add_argument('-w', type=float, default=1)
ap.add_argument('-q', type=float, default=0, help='cap each proxy thread at this %% of a core')
ap.add_argument('specs', nargs='+')
a = ap.parse_args()
subprocess.run(['ip', 'link', 'set', 'lo', 'up'], check=True)
import tempfile
out = tempfile.mkdtemp(prefix='halyard-ab-'); os.makedirs(out + '/www', exist_ok=True)
open(out + '/www/index.html', 'w').write('x' * 128)
conf = f"""user root; worker_processes 1; daemon off; pid {out}/nginx.pid; error_log {out}/nginx-error.log warn;
events {{ worker_connections 8192; }}
http {{ access_log off; sendfile on; tcp_nodelay on; keepalive_requests 10000000; keepalive_timeout 60s;
 default_type application/octet-stream; client_body_temp_path {out}/tmp; proxy_temp_path {out}/tmp;
 server {{ listen 127.0.0.1:18081 backlog=4096; root {out}/www; add_header X-Backend $server_port; }}
 server {{ listen 127.0.0.1:18082 backlog=4096; root {out}/www; add_header X-Backend $server_port; }}
 server {{ listen 127.0.0.1:18083 backlog=4096; root {out}/www; add_header X-Backend $server_port; }} }}"""
open(out + '/nginx.conf', 'w').write(conf); os.makedirs(out + '/tmp', exist_ok=True)
open(out + '/report.lua', 'w').write('''done = function(s, lat, r)
 io.write(string.format("RESULT requests=%d p99_us=%d errors=%d\\n", s.requests, lat:percentile(99), s.errors.connect + s.errors.read + s.errors.write + s.errors.status + s.errors.timeout)) end''')
procs = []
def start(cmd, log):
    p = subprocess.Popen(cmd, shell=True, stdout=open(log, 'w'), stderr=subprocess.STDOUT, start_new_session=True, env=dict(os.environ, BENCH_RUN=out))
    procs.append(p); return p
def cleanup(*_):
    for p in procs:
        try: os.killpg(p.pid, signal.SIGTERM)
        except Exception: pass
signal.signal(signal.SIGTERM, lambda *x: (cleanup(), sys.exit(1)))
import atexit; atexit.register(cleanup)
start(f'exec nginx -e {out}/nginx-error.log -c {out}/nginx.conf', out + '/nginx.log')
targets = []
for s in a.specs:
    n, port, cmd = s.split('|', 2)
    p = start('exec ' + cmd, f'{out}/{n}.log')
    targets.append((n, int(port), p))
# Ready when each target answers 200 six times in a row (its checks have
# brought the backends up); bounded at 30 s.
import urllib.request
for n, port, p in targets:
    ok, end = 0, time.time() + 30
    while ok < 6 and time.time() < end:
        try:
            ok = ok + 1 if urllib.request.urlopen(f'http://127.0.0.1:{port}/', timeout=2).status == 200 else 0
        except Exception:
            ok = 0; time.sleep(0.2)
    if ok < 6: sys.exit(f'{n} not ready on :{port} within 30 s (log: {out}/{n}.log)')
def pids(pg):
    r = subprocess.run(['pgrep', '-g', str(pg)], capture_output=True, text=True).stdout.split()
    return [int(x) for x in r]
groups = []
def cap_threads(name, pg, pct):
    root = '/sys/fs/cgroup/cpu'
    for pid in pids(pg):
        for t in sorted(os.listdir(f'/proc/{pid}/task'), key=int):
            g = f'{root}/halyard-ab-{name}-{t}'
            os.makedirs(g, exist_ok=True); groups.append(g)
            open(g + '/cpu.cfs_period_us', 'w').write('10000')
            open(g + '/cpu.cfs_quota_us', 'w').write(str(int(100 * pct)))
            open(g + '/tasks', 'w').write(t)
            print(f'{name}: thread {t} ({open(f"/proc/{pid}/task/{t}/comm").read().strip()}) capped at {pct:g}% of a core', flush=True)
def uncap():
    for g in groups:
        try:
            for t in open(g + '/tasks').read().split(): open('/sys/fs/cgroup/cpu/tasks', 'w').write(t)
            os.rmdir(g)
        except Exception: pass
atexit.register(uncap)
if a.q:
    for n, port, p in targets: cap_threads(n, p.pid, a.q)
def cpu(pg):
    ns = 0; ut = 0; stt = 0
    for pid in pids(pg):
        for t in glob.glob(f'/proc/{pid}/task/*'):
            try:
                ns += int(open(t + '/schedstat').read().split()[0])
                f = open(t + '/stat').read().rsplit(')', 1)[1].split()
                ut += int(f[11]); stt += int(f[12])
            except Exception: pass
    return ns, ut, stt
def segs():
    l = [x.split() for x in open('/proc/net/snmp') if x.startswith('Tcp:')]
    d = dict(zip(l[0][1:], l[1][1:]))
    # sent segments; retransmitted segments (tail-loss probes included)
    return int(d['OutSegs']), int(d['RetransSegs'])
rows = {}
HZ = os.sysconf('SC_CLK_TCK')
concs = [int(x) for x in a.c.split()]
for rep in range(a.r):
    for c in concs:
        order = targets[rep % len(targets):] + targets[:rep % len(targets)]
        for n, port, p in order:
            url = f'http://127.0.0.1:{port}/'
            subprocess.run(['wrk', '-t1', f'-c{c}', f'-d{a.w:g}s', url], capture_output=True, timeout=a.w + 15)
            c0 = cpu(p.pid); s0 = segs()
            r = subprocess.run(['wrk', '-t1', f'-c{c}', f'-d{a.d:g}s', '--latency', '-s', out + '/report.lua', url], capture_output=True, text=True, timeout=a.d + 15).stdout
            s1 = segs(); c1 = cpu(p.pid)
            m = re.search(r"RESULT requests=(\d+) p99_us=(\d+) errors=(\d+)", r)
            if not m: print(r); continue
            req, p99, err = map(int, m.groups())
            if err: print(f'warning: {n} had {err} errors in this run', flush=True)
            us = (c1[0] - c0[0]) / 1e3 / req
            u = (c1[1] - c0[1]) / HZ * 1e6 / req; sy = (c1[2] - c0[2]) / HZ * 1e6 / req
            sg = (s1[0] - s0[0]) / req; rt = (s1[1] - s0[1]) / req
            rows.setdefault((n, c), []).append((us, u, sy, sg, req / a.d, p99 / 1e3, err))
            print(f'r{rep} c={c:<4} {n:<16} us/req={us:6.2f} user={u:5.2f} sys={sy:5.2f} segs/req={sg:5.2f} retrans/req={rt:6.4f} rps={req/a.d:7.0f} p99={p99/1e3:6.2f}ms err={err}', flush=True)
print('\n== medians (ratio to first target at same c)')
for c in concs:
    base = st.median(x[0] for x in rows[(targets[0][0], c)])
    for n, _, _ in targets:
        xs = rows[(n, c)]
        md = lambda i: st.median(x[i] for x in xs)
        print(f'c={c:<4} {n:<16} us/req={md(0):6.2f} ({md(0)/base:4.2f}) user={md(1):5.2f} sys={md(2):5.2f} segs/req={md(3):5.2f} rps={md(4):7.0f} p99={md(5):6.2f} all us/req: {" ".join(f"{x[0]:.2f}" for x in xs)}')
