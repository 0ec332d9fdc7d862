//! Cookie persistence in HTTP mode (`[backends.X.cookie]`, server `cookie`)
//! over loopback, against the rules HAProxy 2.6.12 showed for `cookie
//! SERVERID insert indirect nocache` (see `proxy/src/cookie.rs` and
//! `Backend::cookie_server` for the exchanges checked).

mod common;

use std::net::SocketAddr;

use common::*;
use halyard_proxy::backend::AdminState;
use halyard_proxy::health::Operational;
use halyard_proxy::Proxy;
use hyper::Response;

/// A backend answering `name|<Cookie header or ->`, with `Last-Modified`
/// (a cacheable response).
async fn backend(name: &'static str) -> SocketAddr {
    hyper_backend(move |req| {
        let cookie = req
            .headers()
            .get("cookie")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-");
        let mut r = Response::new(format!("{name}|{cookie}"));
        r.headers_mut().insert(
            "last-modified",
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        r
    })
    .await
}

/// One request with `cookie` (if any): (server, Cookie the server saw,
/// Set-Cookie values, Cache-Control values).
async fn get(fe: SocketAddr, cookie: Option<&str>) -> (String, String, Vec<String>, Vec<String>) {
    let c = cookie.map_or(String::new(), |c| format!("Cookie: {c}\r\n"));
    let raw = raw_exchange(
        fe,
        format!("GET / HTTP/1.1\r\nHost: x\r\n{c}Connection: close\r\n\r\n").as_bytes(),
    )
    .await;
    let (head, body) = raw.split_once("\r\n\r\n").expect("a response");
    assert!(head.starts_with("HTTP/1.1 200"), "{raw}");
    let header = |n: &str| -> Vec<String> {
        head.lines()
            .filter_map(|l| l.split_once(": "))
            .filter(|(k, _)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v.to_string())
            .collect()
    };
    let (server, seen) = body.split_once('|').expect("name|cookie");
    (
        server.into(),
        seen.into(),
        header("set-cookie"),
        header("cache-control"),
    )
}

async fn start(extra: &str) -> (Proxy, SocketAddr) {
    let list = [
        ("s1", backend("s1").await, "cookie = \"c1\""),
        ("s2", backend("s2").await, "cookie = \"c2\""),
    ];
    let cfg = config(
        "mode = \"http\"",
        &format!(
            "[backends.be]\nbalance = \"roundrobin\"\n{extra}\n[backends.be.cookie]\nname = \"SERVERID\"\nmode = \"insert\"\nindirect = true\nnocache = true\n{}",
            servers(&list)
        ),
    );
    let p = Proxy::start(cfg).await.unwrap();
    let fe = p.local_addrs("fe")[0];
    (p, fe)
}

/// The first request gets `SERVERID=<its server's value>; path=/` and
/// `Cache-control: private` (cacheable: GET with Last-Modified); requests
/// with it stick to that server (roundrobin would alternate), get no new
/// cookie, and the server never sees the cookie (`indirect`), while other
/// cookies reach it. The stats show the values (CSV `cookie`).
#[tokio::test]
async fn first_response_sets_the_cookie_and_later_requests_stick() {
    let (p, fe) = start("").await;
    let (server, seen, set, cc) = get(fe, None).await;
    let value = if server == "s1" { "c1" } else { "c2" };
    assert_eq!(set, [format!("SERVERID={value}; path=/")]);
    assert_eq!(cc, ["private"]);
    assert_eq!(seen, "-");
    for _ in 0..10 {
        let (s, seen, set, cc) = get(fe, Some(&format!("a=1; SERVERID={value}; b=2"))).await;
        assert_eq!((s.as_str(), seen.as_str()), (server.as_str(), "a=1; b=2"));
        assert!(set.is_empty() && cc.is_empty(), "{set:?} {cc:?}");
    }
    let csv = p.stats().to_csv();
    assert!(
        csv.lines()
            .any(|l| l.starts_with("be,s1,") && l.contains(",c1,")),
        "{csv}"
    );
    assert!(
        csv.lines()
            .any(|l| l.starts_with("be,BACKEND,") && l.contains(",SERVERID,")),
        "{csv}"
    );
}

/// DRAIN keeps the clients whose cookie names the server and takes no new
/// ones (HAProxy 2.6.12: `set server b/s1 state drain`, then `Cookie:
/// SERVERID=c1` still went to s1 and cookie-less requests to s2).
#[tokio::test]
async fn drain_keeps_sticky_clients_and_takes_no_new_ones() {
    let (p, fe) = start("").await;
    p.set_state("be", "s1", AdminState::Drain).unwrap();
    for _ in 0..4 {
        assert_eq!(get(fe, Some("SERVERID=c1")).await.0, "s1");
        let (s, _, set, _) = get(fe, None).await;
        assert_eq!(
            (s.as_str(), set),
            ("s2", vec!["SERVERID=c2; path=/".to_string()])
        );
    }
}

/// A cookie naming a DOWN server: the request is balanced and re-cookied
/// (HAProxy 2.6.12 did that with and without `option redispatch`); with
/// `persist = true` it still goes to the DOWN server.
#[tokio::test]
async fn down_server_moves_the_client_unless_persist() {
    let (p, fe) = start("redispatch = true").await;
    p.set_health("be", "s1", Operational::Down).unwrap();
    for _ in 0..3 {
        let (s, seen, set, _) = get(fe, Some("SERVERID=c1")).await;
        assert_eq!((s.as_str(), seen.as_str()), ("s2", "-"));
        assert_eq!(set, ["SERVERID=c2; path=/"]);
    }
    let (p, fe) = start("persist = true").await;
    p.set_health("be", "s1", Operational::Down).unwrap();
    let (s, _, set, _) = get(fe, Some("SERVERID=c1")).await;
    assert_eq!((s.as_str(), set.len()), ("s1", 0));
}
