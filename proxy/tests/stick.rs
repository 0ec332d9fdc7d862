//! Stick tables on loopback (`stick_table` + `stick = "on src"`), each
//! behaviour as HAProxy 2.6.12 showed it for the same configuration
//! (`stick-table type ip size N [expire T]`, `stick on src`, roundrobin,
//! clients bound to 127.0.0.2, .3, ...; `show table` over its admin socket).

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use common::*;
use halyard_proxy::runtime::parse_command;
use halyard_proxy::Proxy;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;

fn cmd(p: &Proxy, line: &str) -> String {
    p.execute(parse_command(line).unwrap()).unwrap()
}

/// Connects to `fe` from 127.0.0.`last` and returns what the server said.
async fn from(last: u8, fe: SocketAddr) -> String {
    tokio::time::timeout(BOUND, async {
        let sock = TcpSocket::new_v4().unwrap();
        sock.bind(SocketAddr::new(
            IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)),
            0,
        ))
        .unwrap();
        let mut s = sock.connect(fe).await.unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out).await;
        out.trim().to_string()
    })
    .await
    .expect("session bounded")
}

/// Three name servers behind `stick_table = { <table> }` and `stick = "on src"`.
async fn start(table: &str) -> (Proxy, SocketAddr, Vec<tokio::task::JoinHandle<()>>) {
    let mut list = Vec::new();
    let mut tasks = Vec::new();
    for n in ["s1", "s2", "s3"] {
        let (a, t) = name_server(n).await;
        list.push((n, a, ""));
        tasks.push(t);
    }
    let backend = format!(
        "[backends.be]\nstick_table = {{ {table} }}\nstick = \"on src\"\n{}",
        servers(&list)
    );
    let p = Proxy::start(config("", &backend)).await.unwrap();
    let fe = p.local_addrs("fe")[0];
    (p, fe, tasks)
}

/// HAProxy 2.6.12: each client stays on its server across connections; a
/// client whose server goes into maintenance is balanced to another and the
/// entry follows it, so it stays there after the old server is back (the
/// Galera recipe: clients never move back by themselves).
#[tokio::test]
async fn tcp_clients_stick_and_a_moved_client_stays_moved() {
    let (p, fe, _t) = start("type = \"ip\", size = 100").await;
    let first2 = from(2, fe).await;
    let first3 = from(3, fe).await;
    assert_ne!(first2, first3, "roundrobin spreads the first sessions");
    for _ in 0..5 {
        assert_eq!(from(2, fe).await, first2);
        assert_eq!(from(3, fe).await, first3);
    }
    let id = |s: &str| s.trim_start_matches('s').to_string();
    assert_eq!(
        cmd(&p, "show table be"),
        format!(
            "# table: be, type: ip, size:100, used:2\n\
             0x1: key=127.0.0.2 use=0 exp=0 server_id={} server_key={first2}\n\
             0x2: key=127.0.0.3 use=0 exp=0 server_id={} server_key={first3}\n",
            id(&first2),
            id(&first3)
        )
    );
    cmd(&p, &format!("disable server be/{first2}"));
    let moved = from(2, fe).await;
    assert_ne!(moved, first2);
    cmd(&p, &format!("enable server be/{first2}"));
    for _ in 0..5 {
        assert_eq!(from(2, fe).await, moved, "stays on the new server");
    }
    assert!(cmd(&p, "show table be key 127.0.0.2").contains(&format!("server_key={moved}\n")));
    assert_eq!(from(3, fe).await, first3, "the other client did not move");
}

/// An entry idle for `expire` goes (HAProxy 2.6.12: `show table` lists it
/// no more), and its client is balanced again.
#[tokio::test]
async fn expire_drops_an_idle_entry() {
    let (p, fe, _t) = start("type = \"ip\", size = 10, expire = \"200ms\"").await;
    assert_eq!(from(2, fe).await, "s1");
    assert!(cmd(&p, "show table be").contains("key=127.0.0.2"));
    eventually("the entry expires", || {
        cmd(&p, "show table be").ends_with("used:0\n")
    })
    .await;
    assert_eq!(
        from(2, fe).await,
        "s2",
        "balanced again (roundrobin's next)"
    );
}

/// A full table makes room for a new client by evicting the least recently
/// used entry (HAProxy 2.6.12, `size 3`: .3 went when .5 came after .2 was
/// used again).
#[tokio::test]
async fn a_full_table_evicts_the_least_recently_used() {
    let (p, fe, _t) = start("type = \"ip\", size = 2").await;
    from(2, fe).await;
    from(3, fe).await;
    from(2, fe).await;
    from(4, fe).await;
    let t = cmd(&p, "show table be");
    assert!(
        t.starts_with("# table: be, type: ip, size:2, used:2\n"),
        "{t}"
    );
    assert!(t.contains("key=127.0.0.2 ") && t.contains("key=127.0.0.4 "));
    assert!(!t.contains("key=127.0.0.3 "), "{t}");
}

/// `clear table be key K` removes one entry, `clear table be` all; `show
/// table` alone lists the tables' headers. A backend without a table and
/// a key that is not an IP are errors.
#[tokio::test]
async fn clear_table() {
    let (p, fe, _t) = start("type = \"ip\", size = 10").await;
    for c in 2..=4 {
        from(c, fe).await;
    }
    cmd(&p, "clear table be key 127.0.0.3");
    let t = cmd(&p, "show table be");
    assert!(t.contains("used:2") && !t.contains("127.0.0.3"), "{t}");
    assert_eq!(from(3, fe).await, "s1", "balanced again");
    cmd(&p, "clear table be");
    assert_eq!(
        cmd(&p, "show table"),
        "# table: be, type: ip, size:10, used:0\n"
    );
    assert!(parse_command("clear table be key nope").is_err());
    assert!(p
        .execute(parse_command("show table nope").unwrap())
        .is_err());
    assert!(p
        .execute(parse_command("clear table be key ::1").unwrap())
        .is_err());
}

/// An HTTP server answering every request on a connection with `name`.
async fn http_name_server(name: &'static str) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    spawn_server(move |mut s| async move {
        let mut buf = Vec::new();
        while next_head(&mut s, &mut buf).await.is_some() {
            let r = format!("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{name}");
            if s.write_all(r.as_bytes()).await.is_err() {
                return;
            }
        }
    })
    .await
}

/// HTTP mode looks the table up per request, as HAProxy 2.6.12 does (each
/// request is a stream): on one kept-alive client connection, after `clear
/// table` the next request is balanced again, and after its server went
/// into maintenance it moves and the entry follows.
#[tokio::test]
async fn http_requests_stick_per_request() {
    let mut list = Vec::new();
    let mut _tasks = Vec::new();
    for n in ["s1", "s2", "s3"] {
        let (a, t) = http_name_server(n).await;
        list.push((n, a, ""));
        _tasks.push(t);
    }
    let backends = format!(
        "[backends.be]\nstick_table = {{ type = \"ip\", size = 10 }}\nstick = \"on src\"\n{}",
        servers(&list)
    );
    let p = Proxy::start(http_config("", &backends)).await.unwrap();
    let fe = p.local_addrs("fe")[0];
    let sock = TcpSocket::new_v4().unwrap();
    sock.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let s = sock.connect(fe).await.unwrap();
    let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(s))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut get = async || http_get(&mut tx, "x", "/").await.1;
    assert_eq!(get().await, "s1");
    assert_eq!(get().await, "s1");
    cmd(&p, "clear table be");
    assert_eq!(get().await, "s2");
    assert_eq!(get().await, "s2");
    cmd(&p, "disable server be/s2");
    assert_eq!(get().await, "s3");
    cmd(&p, "enable server be/s2");
    assert_eq!(get().await, "s3");
    assert!(
        cmd(&p, "show table be").contains("key=127.0.0.2 use=0 exp=0 server_id=3 server_key=s3")
    );
}
