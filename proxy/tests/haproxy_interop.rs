//! PROXY protocol interop with the real HAProxy (the anchor): HAProxy's
//! `send-proxy` / `send-proxy-v2` headers are accepted by our frontend, and
//! the v2 header we send is accepted by HAProxy's `accept-proxy`. Skips with a
//! printed reason when `haproxy` is missing, unless HALYARD_REQUIRE_SYSTEM=1.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use halyard_proxy::config::Config;
use halyard_proxy::Proxy;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A server that answers with the raw PROXY header line it received.
async fn header_reporter() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut b = [0u8; 1];
                while buf.len() < 256 && !buf.ends_with(b"\r\n") {
                    match s.read(&mut b).await {
                        Ok(1) => buf.push(b[0]),
                        _ => break,
                    }
                }
                let _ = s.write_all(&buf).await;
                let _ = s.shutdown().await;
            });
        }
    });
    a
}

async fn ask(addr: SocketAddr) -> (String, SocketAddr) {
    tokio::time::timeout(BOUND, async {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let me = s.local_addr().unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out).await;
        (out, me)
    })
    .await
    .expect("bounded")
}

#[tokio::test]
async fn proxy_protocol_interoperates_with_haproxy() {
    if haproxy_missing("proxy_protocol_interoperates_with_haproxy") {
        return;
    }
    let reporter = header_reporter().await;
    let (to_us_v2, to_us_v1, from_us) = (free_port(), free_port(), free_port());
    // Our proxy: `in` requires PROXY and relays it as v1 to the reporter;
    // `out` sends v2 to HAProxy's accept-proxy listener.
    let ours = Config::from_toml(&format!(
        r#"
[frontends.in]
binds = ["127.0.0.1:0"]
backend = "report"
accept_proxy = true
[frontends.out]
binds = ["127.0.0.1:0"]
backend = "haproxy"
[backends.report.servers.r]
address = "{reporter}"
send_proxy = "v1"
[backends.haproxy.servers.h]
address = "127.0.0.1:{from_us}"
send_proxy = "v2"
"#
    ))
    .unwrap();
    let p = Proxy::start(ours).await.unwrap();
    let our_in = p.local_addrs("in")[0];
    let our_out = p.local_addrs("out")[0];
    let dir = std::env::temp_dir().join(format!("halyard-haproxy-interop-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("haproxy.cfg");
    std::fs::write(
        &cfg,
        format!(
            "global\n    nbthread 1\ndefaults\n    mode tcp\n    timeout connect 2s\n    timeout client 10s\n    timeout server 10s\n\
listen to_us_v2\n    bind 127.0.0.1:{to_us_v2}\n    server h {our_in} send-proxy-v2\n\
listen to_us_v1\n    bind 127.0.0.1:{to_us_v1}\n    server h {our_in} send-proxy\n\
listen from_us\n    bind 127.0.0.1:{from_us} accept-proxy\n    server r {reporter} send-proxy\n"
        ),
    )
    .unwrap();
    let _k = spawn_haproxy(&cfg);
    for port in [to_us_v2, to_us_v1, from_us] {
        let a = SocketAddr::from(([127, 0, 0, 1], port));
        eventually("haproxy listening", || {
            std::net::TcpStream::connect_timeout(&a, Duration::from_millis(200)).is_ok()
        })
        .await;
    }
    // HAProxy v2 and v1 -> our parser -> our v1 encoder: the client's own
    // address and the HAProxy frontend it hit come through unchanged.
    for port in [to_us_v2, to_us_v1] {
        let (line, me) = ask(SocketAddr::from(([127, 0, 0, 1], port))).await;
        assert_eq!(
            line,
            format!("PROXY TCP4 127.0.0.1 127.0.0.1 {} {port}\r\n", me.port()),
            "via :{port}"
        );
    }
    // Our v2 encoder -> HAProxy's accept-proxy -> HAProxy's send-proxy (v1).
    let (line, me) = ask(our_out).await;
    assert_eq!(
        line,
        format!(
            "PROXY TCP4 127.0.0.1 127.0.0.1 {} {}\r\n",
            me.port(),
            our_out.port()
        )
    );
    let _ = std::fs::remove_dir_all(&dir);
}
