//! Request hashing in HTTP mode (`balance uri`, `url_param`, `hdr(<name>)`)
//! over loopback: requests for the same resource stick to one server, a
//! request without the hashed part falls back to round robin (HAProxy's
//! `assign_server`). The server each URI gets, compared with HAProxy
//! 2.6.12's, is in `balance.rs`'s unit tests.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;

use common::*;
use halyard_proxy::Proxy;
use hyper::Response;

/// An HTTP server answering its name.
async fn named(name: &'static str) -> SocketAddr {
    hyper_backend(move |_| Response::new(name.to_string())).await
}

/// A proxy with three servers and `backend` lines (`balance`, `hash_type`).
async fn start(backend: &str) -> (Proxy, SocketAddr) {
    let list = [
        ("s1", named("s1").await, ""),
        ("s2", named("s2").await, ""),
        ("s3", named("s3").await, ""),
    ];
    let cfg = config(
        "mode = \"http\"",
        &format!("[backends.be]\n{backend}\n{}", servers(&list)),
    );
    let p = Proxy::start(cfg).await.unwrap();
    let fe = p.local_addrs("fe")[0];
    (p, fe)
}

/// The server that answered `GET path` with `headers` (CRLF-terminated
/// lines).
async fn server_for(fe: SocketAddr, path: &str, headers: &str) -> String {
    let raw = raw_exchange(
        fe,
        format!("GET {path} HTTP/1.1\r\nHost: x\r\n{headers}Connection: close\r\n\r\n").as_bytes(),
    )
    .await;
    let (head, body) = raw.split_once("\r\n\r\n").expect("a response");
    assert!(head.starts_with("HTTP/1.1 200"), "{raw}");
    body.to_string()
}

/// `balance uri`: every request for a URI goes to the same server, the
/// query string aside; different URIs spread over the servers. The stats'
/// `algo` column says `uri`, as HAProxy's.
#[tokio::test]
async fn uri_hash_sticks_per_uri() {
    let (p, fe) = start("balance = \"uri\"").await;
    let mut servers = BTreeMap::new();
    for i in 0..12 {
        let first = server_for(fe, &format!("/img/{i}.png"), "").await;
        for q in 0..4 {
            let again = server_for(fe, &format!("/img/{i}.png?v={q}"), "").await;
            assert_eq!(again, first, "/img/{i}.png moved");
        }
        *servers.entry(first).or_insert(0) += 1;
    }
    assert!(servers.len() >= 2, "12 URIs on one server: {servers:?}");
    let csv = p.stats().to_csv();
    let be = csv
        .lines()
        .find(|l| l.starts_with("be,BACKEND,"))
        .expect("backend line");
    assert!(be.contains(",uri,"), "{be}");
}

/// `balance hdr(X-User)`: a user's requests stick to one server; requests
/// without the header (or with an empty one) go round robin over the
/// servers (HAProxy's map in order: s1 s2 s3). `set balance` switches to
/// `url_param`, which then hashes the parameter's value.
#[tokio::test]
async fn header_hash_sticks_and_falls_back_to_round_robin_without_the_header() {
    let (p, fe) = start("balance = \"hdr(X-User)\"").await;
    for user in ["alice", "bob", "carol"] {
        let first = server_for(fe, "/", &format!("X-User: {user}\r\n")).await;
        for path in ["/a", "/b?x=1", "/c/d"] {
            let h = format!("x-user: {user}\r\n");
            assert_eq!(server_for(fe, path, &h).await, first, "{user} moved");
        }
    }
    let mut rr = Vec::new();
    for i in 0..6 {
        let h = if i % 2 == 0 { "" } else { "X-User:\r\n" };
        rr.push(server_for(fe, "/", h).await);
    }
    assert_eq!(rr, ["s1", "s2", "s3", "s1", "s2", "s3"]);

    p.set_algorithm("be", "url_param user".parse().unwrap())
        .unwrap();
    let first = server_for(fe, "/cart?user=42&item=1", "").await;
    for item in 2..6 {
        let path = format!("/other?item={item}&user=42");
        assert_eq!(server_for(fe, &path, "").await, first);
    }
}
