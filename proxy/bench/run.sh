#!/usr/bin/env bash
# Runs the shared anchor harness (read-only, ../../../shared/anchors/proxy/bench.sh
# or $ANCHORS) ONCE with HAProxy (http, tcp, tcp+splice; nbthread 1) and
# halyard-proxy (http, tcp, tcp+splice; 1 thread), direct-to-nginx being the
# harness's baseline. EXTRA='name|port|bulkport|cmd' adds a target (e.g. the
# 2-thread config halyard-tcp-mt.toml on 28182/25302); more targets can follow the
# options as 'name|port|bulkport|cmd' arguments (BENCHMARKS.md ## proxy adds the
# per-core 2-thread configs halyard-tcp-mt.toml and halyard-http-2t.toml that way).
# Output goes to ${TMPDIR:-/tmp}/halyard-proxy-runs/<timestamp>/ (summary.txt).
#   proxy/bench/run.sh [bench.sh options, e.g. -d 10 -r 3 -c "50 200"] [extra targets]
# Needs: apt-get install -y haproxy wrk nginx-light iperf3 curl; a release build:
#   cargo build --release -p halyard-proxy --bin halyard-proxy
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
ANCHORS=${ANCHORS:-$(cd "$ROOT/.." && pwd)/shared/anchors/proxy}
[ -x "$ANCHORS/bench.sh" ] || ANCHORS=/work/shared/anchors/proxy
BIN=${HALYARD_PROXY_BIN:-$ROOT/target/release/halyard-proxy}
[ -x "$BIN" ] || { echo "build first: cargo build --release -p halyard-proxy --bin halyard-proxy" >&2; exit 2; }
targets=(
  "haproxy-http|28080|-|haproxy -db -f $ANCHORS/configs/haproxy-http.cfg"
  "haproxy-tcp|28081|25201|haproxy -db -f $ANCHORS/configs/haproxy-tcp.cfg"
  "haproxy-tcp-splice|28082|25202|haproxy -db -f $ANCHORS/configs/haproxy-tcp-splice.cfg"
  "halyard-http|28180|-|env RUST_LOG=warn $BIN --config $HERE/halyard-http.toml"
  "halyard-tcp|28181|25301|env RUST_LOG=warn $BIN --config $HERE/halyard-tcp.toml"
  "halyard-tcp-splice|28183|25303|env RUST_LOG=warn $BIN --config $HERE/halyard-tcp-splice.toml"
)
[ -n "${EXTRA:-}" ] && targets+=("$EXTRA")
exec "$ANCHORS/bench.sh" "$@" "${targets[@]}"
