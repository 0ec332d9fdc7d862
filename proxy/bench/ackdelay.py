#!/usr/bin/env python3
"""Delay from each backend data segment to the proxy's first segment that ACKs it.

Reads `tcpdump -nn -tt -r FILE` text on stdin, FILE being a capture of the
proxy <-> backend traffic (backends on ports 18081-18083, as in ab.py), e.g.
inside the namespace of a test:

  tcpdump -i lo -nn -s 96 -w /tmp/be.pcap "portrange 18081-18083" &
  ... load ...
  tcpdump -nn -tt -r /tmp/be.pcap | proxy/bench/ackdelay.py

Prints the distribution of the delays and how many exceed 1.5, 2 and 4 ms:
what a backend's tail-loss probe (2 ms + 2*SRTT at HZ=1000) reacts to.
"""
import sys, re, statistics as st
pat = re.compile(r'^(\d+\.\d+) IP (\S+)\.(\d+) > (\S+)\.(\d+): Flags \[([^\]]*)\](?:, seq (\d+):(\d+))?(?:, ack (\d+))?.*length (\d+)')
pending = {}  # conn -> list of (end_seq, t)
delays = []
for line in sys.stdin:
    m = pat.match(line)
    if not m: continue
    t = float(m.group(1)); sp = int(m.group(3)); dp = int(m.group(5))
    seq_end = m.group(8); ack = m.group(9); ln = int(m.group(10))
    if 18081 <= sp <= 18083:  # backend -> proxy data
        if ln > 0 and seq_end:
            pending.setdefault((sp, dp), []).append((int(seq_end), t))
    elif 18081 <= dp <= 18083 and ack:
        q = pending.get((dp, sp))
        if not q: continue
        a = int(ack); keep = []
        for e, t0 in q:
            if a >= e: delays.append(t - t0)
            else: keep.append((e, t0))
        pending[(dp, sp)] = keep
left = sum(len(v) for v in pending.values())
delays.sort()
n = len(delays)
if n == 0:
    print("no data"); sys.exit()
q = lambda p: delays[min(n - 1, int(p * n))] * 1e3
over = lambda ms: sum(1 for d in delays if d * 1e3 > ms)
print(f"segments={n} unacked_at_end={left} p50={q(.5):.3f}ms p99={q(.99):.3f}ms p99.9={q(.999):.3f}ms max={delays[-1]*1e3:.3f}ms >1.5ms={over(1.5)} >2ms={over(2)} >4ms={over(4)}")
