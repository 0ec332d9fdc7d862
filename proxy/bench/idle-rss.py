#!/usr/bin/env python3
"""Idle memory per connection: RSS growth of a proxy holding N idle TCP sessions.

For each proxy (HAProxy 2.6 nbthread 1, halyard-proxy 1 thread): start it in
the foreground with a TCP listener forwarding to a local holding backend, open
N client connections through it (each sends 16 bytes once, then stays idle),
wait until the backend holds N sessions, and report (RSS_after - RSS_before) / N.
Everything is on 127.0.0.1, bounded in count and time; only processes this
script started are signalled.

  proxy/bench/idle-rss.py [-n 9900] [--bin target/release/halyard-proxy]

The proxy needs 2 fds per session, so n is capped by RLIMIT_NOFILE's hard limit.
"""
import argparse, asyncio, os, resource, signal, socket, subprocess, sys, tempfile, time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def wait_port(port, secs=15):
    end = time.time() + secs
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return True
        except OSError:
            time.sleep(0.1)
    return False


class Holder:
    """A backend that accepts and holds connections (reads and drops bytes)."""

    def __init__(self):
        self.count = 0

    async def handle(self, r, w):
        self.count += 1
        try:
            while await r.read(4096):
                pass
        except Exception:
            pass
        self.count -= 1
        w.close()


async def measure(name, cmd, port, n, holder):
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        if not await asyncio.get_running_loop().run_in_executor(None, wait_port, port):
            raise SystemExit(f"{name} did not listen on :{port}")
        await asyncio.sleep(1.0)
        before = rss_kib(proc.pid)
        socks = []
        for i in range(n):
            r, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 10)
            w.write(b"0123456789abcdef")
            socks.append(w)
            if i % 100 == 99:
                await asyncio.sleep(0)
        end = time.time() + 60
        while holder.count < n and time.time() < end:
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)
        after = rss_kib(proc.pid)
        held = holder.count
        for w in socks:
            w.close()
        per = (after - before) * 1024 / n
        print(f"{name:<14} n={n} held={held} rss_before={before}KiB rss_after={after}KiB per_conn={per:.0f}B ({per/1024:.2f} KiB)")
        return per
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        end = time.time() + 10
        while holder.count > 0 and time.time() < end:
            await asyncio.sleep(0.1)


class RemoteHolder:
    """The holding backend in its own process (so each process stays under
    RLIMIT_NOFILE): it prints its port, then its connection count every 0.1 s."""

    def __init__(self):
        import threading
        self.proc = subprocess.Popen([sys.executable, __file__, "--holder"], stdout=subprocess.PIPE, text=True)
        self.port = int(self.proc.stdout.readline())
        self.count = 0
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            try:
                self.count = int(line)
            except ValueError:
                pass


async def holder_main():
    raise_nofile(0)
    holder = Holder()
    server = await asyncio.start_server(holder.handle, "127.0.0.1", 0, backlog=4096)
    print(server.sockets[0].getsockname()[1], flush=True)
    while True:
        await asyncio.sleep(0.1)
        try:
            print(holder.count, flush=True)
        except BrokenPipeError:
            return


def raise_nofile(n):
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


async def main():
    if "--holder" in sys.argv:
        return await holder_main()
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=9900)
    ap.add_argument("--bin", default=os.path.join(ROOT, "target", "release", "halyard-proxy"))
    a = ap.parse_args()
    hard = raise_nofile(0)
    if hard < 2 * a.n + 64:
        sys.exit(f"RLIMIT_NOFILE hard limit {hard} is too low for n={a.n} (the proxy needs 2 fds per session); use -n {(hard - 64) // 2}")
    holder = RemoteHolder()
    bport = holder.port
    tmp = tempfile.mkdtemp(prefix="halyard-idle-")
    hcfg = os.path.join(tmp, "haproxy.cfg")
    with open(hcfg, "w") as f:
        f.write(f"""global
    nbthread 1
    maxconn {a.n + 20}
defaults
    mode tcp
    timeout connect 5s
    timeout client 300s
    timeout server 300s
listen idle
    bind 127.0.0.1:28391
    server s1 127.0.0.1:{bport}
""")
    ycfg = os.path.join(tmp, "halyard.toml")
    with open(ycfg, "w") as f:
        f.write(f"""[global]
threads = 1
[defaults]
timeout_client = "300s"
timeout_server = "300s"
[frontends.idle]
binds = ["127.0.0.1:28392"]
backend = "idle"
[backends.idle.servers.s1]
address = "127.0.0.1:{bport}"
""")
    lim = f"--nofile={hard}:{hard}"
    print(f"# idle RSS per connection, n={a.n}, backend :{bport}")
    h = await measure("haproxy-tcp", ["prlimit", lim, "--", "haproxy", "-db", "-f", hcfg], 28391, a.n, holder)
    y = await measure("halyard-tcp", ["prlimit", lim, "--", "env", "RUST_LOG=warn", a.bin, "--config", ycfg], 28392, a.n, holder)
    print(f"ratio halyard/haproxy: {y / h:.2f}" if h > 0 else "haproxy grew by 0")
    holder.proc.terminate()
    holder.proc.wait()


asyncio.run(main())
