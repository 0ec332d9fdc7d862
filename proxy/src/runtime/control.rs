//! Runtime commands (HAProxy runtime-API-like text) and the stats listener.
//!
//! Commands, one per line:
//!
//! ```text
//! set weight BACKEND/SERVER WEIGHT|PERCENT%
//! set server BACKEND/SERVER weight WEIGHT|PERCENT%   (the same)
//! get weight BACKEND/SERVER     ("CURRENT (initial CONFIGURED)")
//! set server BACKEND/SERVER state ready|drain|maint
//! enable server BACKEND/SERVER  (state ready)
//! disable server BACKEND/SERVER (state maint)
//! set server BACKEND/SERVER health up|down
//! set server BACKEND/SERVER addr IP [port PORT]
//! set maxconn server BACKEND/SERVER N   (0: unlimited)
//! set balance BACKEND ALGORITHM [OPTIONS]   (as HAProxy's balance line)
//! add server BACKEND/SERVER IP:PORT [weight N] [backup] [maxconn N] [disabled]
//!                      (SERVER: letters, digits, `_`, `.`, `:`, `-`)
//! del server BACKEND/SERVER
//! show backend         (the backends' names)
//! show stat            (CSV)
//! show metrics         (Prometheus, HAProxy 2.6 exporter's names)
//! show table [BACKEND [key IP]]   (a backend's stick table, HAProxy's format)
//! clear table BACKEND [key IP]    (one entry, or all)
//! ```
//!
//! The stats listener answers `GET /metrics` (Prometheus text format 0.0.4
//! with the names and labels of HAProxy 2.6's exporter, see
//! [`Snapshot::to_prometheus`](crate::stats::Snapshot::to_prometheus)),
//! `GET /stats` (CSV) and `POST /command` (body: one command) over HTTP/1.0.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::{BackendRt, Proxy};
use crate::backend::{AdminState, ServerSpec};
use crate::balance::Algorithm;
use crate::config::ServerConfig;
use crate::health::Operational;
use crate::{Error, Result};

/// A parsed runtime command.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Command {
    /// `set weight B/S W`.
    SetWeight {
        /// Backend.
        backend: String,
        /// Server.
        server: String,
        /// Weight.
        weight: u32,
    },
    /// `set weight B/S N%`: N percent of the configured weight.
    SetWeightPercent {
        /// Backend.
        backend: String,
        /// Server.
        server: String,
        /// Percent of the configured weight.
        percent: u32,
    },
    /// `set server B/S state X`.
    SetState {
        /// Backend.
        backend: String,
        /// Server.
        server: String,
        /// State.
        state: AdminState,
    },
    /// `set server B/S health up|down`.
    SetHealth {
        /// Backend.
        backend: String,
        /// Server.
        server: String,
        /// State.
        state: Operational,
    },
    /// `get weight B/S`.
    GetWeight {
        /// Backend.
        backend: String,
        /// Server.
        server: String,
    },
    /// `set server B/S addr IP [port P]`.
    SetAddr {
        /// Backend.
        backend: String,
        /// Server.
        server: String,
        /// New IP.
        ip: std::net::IpAddr,
        /// New port; the current one when `None`.
        port: Option<u16>,
    },
    /// `set maxconn server B/S N`.
    SetMaxconn {
        /// Backend.
        backend: String,
        /// Server.
        server: String,
        /// New limit; 0 = unlimited.
        maxconn: u32,
    },
    /// `set balance B ALG`.
    SetBalance {
        /// Backend.
        backend: String,
        /// Algorithm.
        algorithm: Algorithm,
    },
    /// `add server B/S ADDR [weight N] [backup] [maxconn N]`.
    AddServer {
        /// Backend.
        backend: String,
        /// The server (no checks).
        spec: ServerSpec,
    },
    /// `del server B/S`.
    DelServer {
        /// Backend.
        backend: String,
        /// Server.
        server: String,
    },
    /// `show table [B [key K]]`: HAProxy's stick table dump (without a
    /// name, every table's header line).
    ShowTable {
        /// Backend (a table is named after its backend); `None`: all.
        backend: Option<String>,
        /// Only this key.
        key: Option<IpAddr>,
    },
    /// `clear table B [key K]`: removes one entry, or all.
    ClearTable {
        /// Backend.
        backend: String,
        /// Only this key.
        key: Option<IpAddr>,
    },
    /// `show backend`.
    ShowBackend,
    /// `show stat`.
    ShowStat,
    /// `show metrics`.
    ShowMetrics,
}

fn bs(s: &str) -> Result<(String, String)> {
    match s.split_once('/') {
        Some((b, sv)) if !b.is_empty() && !sv.is_empty() => Ok((b.to_string(), sv.to_string())),
        _ => Err(Error::Command(format!("`{s}` is not BACKEND/SERVER"))),
    }
}

fn num(s: Option<&&str>, what: &str) -> Result<u32> {
    s.and_then(|s| s.parse().ok())
        .ok_or_else(|| Error::Command(format!("{what} needs a number")))
}

/// Parses one command line.
pub fn parse_command(line: &str) -> Result<Command> {
    let w: Vec<&str> = line.split_whitespace().collect();
    let cmd = match w.as_slice() {
        ["set", "weight", target, weight] | ["set", "server", target, "weight", weight] => {
            let (backend, server) = bs(target)?;
            match weight.strip_suffix('%') {
                Some(p) => Command::SetWeightPercent {
                    backend,
                    server,
                    percent: num(Some(&p), "weight percentage")?,
                },
                None => Command::SetWeight {
                    backend,
                    server,
                    weight: num(Some(weight), "weight")?,
                },
            }
        }
        ["set", "server", target, "state", st] => {
            let (backend, server) = bs(target)?;
            Command::SetState {
                backend,
                server,
                state: st.parse()?,
            }
        }
        ["get", "weight", target] => {
            let (backend, server) = bs(target)?;
            Command::GetWeight { backend, server }
        }
        [verb @ ("enable" | "disable"), "server", target] => {
            let (backend, server) = bs(target)?;
            Command::SetState {
                backend,
                server,
                state: if *verb == "enable" {
                    AdminState::Ready
                } else {
                    AdminState::Maint
                },
            }
        }
        ["set", "server", target, "addr", ip, rest @ ..] => {
            let (backend, server) = bs(target)?;
            let ip = ip
                .parse()
                .map_err(|_| Error::Command(format!("`{ip}` is not an IP address")))?;
            let port = match rest {
                [] => None,
                ["port", p] => Some(
                    p.parse::<u16>()
                        .ok()
                        .filter(|p| *p > 0)
                        .ok_or_else(|| Error::Command(format!("port `{p}`: use 1..=65535")))?,
                ),
                _ => {
                    return Err(Error::Command(
                        "after addr IP: nothing or `port PORT`".into(),
                    ))
                }
            };
            Command::SetAddr {
                backend,
                server,
                ip,
                port,
            }
        }
        ["set", "maxconn", "server", target, n] => {
            let (backend, server) = bs(target)?;
            Command::SetMaxconn {
                backend,
                server,
                maxconn: num(Some(n), "maxconn")?,
            }
        }
        ["set", "server", target, "health", h] => {
            let (backend, server) = bs(target)?;
            let state = match *h {
                "up" => Operational::Up,
                "down" => Operational::Down,
                _ => return Err(Error::Command(format!("health `{h}`: use up or down"))),
            };
            Command::SetHealth {
                backend,
                server,
                state,
            }
        }
        ["set", "balance", backend, alg @ ..] if !alg.is_empty() => Command::SetBalance {
            backend: backend.to_string(),
            algorithm: alg.join(" ").parse()?,
        },
        ["add", "server", target, addr, rest @ ..] => {
            let (backend, server) = bs(target)?;
            let addr: SocketAddr = addr
                .parse()
                .map_err(|_| Error::Command(format!("`{addr}` is not IP:port")))?;
            let mut spec = ServerSpec::new(server, addr);
            let mut i = 0;
            while i < rest.len() {
                match rest[i] {
                    "backup" => spec.backup = true,
                    "disabled" => spec.disabled = true,
                    "weight" => {
                        spec.weight = num(rest.get(i + 1), "weight")?;
                        i += 1;
                    }
                    "maxconn" => {
                        spec.maxconn = num(rest.get(i + 1), "maxconn")?;
                        i += 1;
                    }
                    o => return Err(Error::Command(format!("unknown server option `{o}`"))),
                }
                i += 1;
            }
            Command::AddServer { backend, spec }
        }
        ["del", "server", target] => {
            let (backend, server) = bs(target)?;
            Command::DelServer { backend, server }
        }
        [verb @ ("show" | "clear"), "table", rest @ ..] => {
            let (backend, key) = match rest {
                [] => (None, None),
                [b] => (Some(b.to_string()), None),
                [b, "key", k] => {
                    let k = k
                        .parse()
                        .map_err(|_| Error::Command(format!("key `{k}` is not an IP address")))?;
                    (Some(b.to_string()), Some(k))
                }
                _ => {
                    return Err(Error::Command(format!(
                        "use `{verb} table BACKEND [key IP]`"
                    )))
                }
            };
            match (*verb, backend) {
                ("show", backend) => Command::ShowTable { backend, key },
                (_, Some(backend)) => Command::ClearTable { backend, key },
                (_, None) => {
                    return Err(Error::Command("use `clear table BACKEND [key IP]`".into()))
                }
            }
        }
        ["show", "backend"] => Command::ShowBackend,
        ["show", "stat"] => Command::ShowStat,
        ["show", "metrics"] => Command::ShowMetrics,
        _ => return Err(Error::Command(format!("unknown command `{}`", line.trim()))),
    };
    Ok(cmd)
}

pub(super) fn execute(p: &Proxy, cmd: Command) -> Result<String> {
    match cmd {
        Command::SetWeight {
            backend,
            server,
            weight,
        } => p.set_weight(&backend, &server, weight)?,
        Command::SetWeightPercent {
            backend,
            server,
            percent,
        } => p.with_backend(&backend, |b| {
            b.core
                .set_weight_percent(std::time::Instant::now(), &server, percent)
        })?,
        Command::SetState {
            backend,
            server,
            state,
        } => p.set_state(&backend, &server, state)?,
        Command::SetHealth {
            backend,
            server,
            state,
        } => p.set_health(&backend, &server, state)?,
        Command::GetWeight { backend, server } => {
            let (current, initial) = p.with_backend(&backend, |b| b.core.weights(&server))?;
            return Ok(format!("{current} (initial {initial})\n"));
        }
        Command::SetAddr {
            backend,
            server,
            ip,
            port,
        } => {
            let current = p.with_backend(&backend, |b| b.core.server_addr(&server))?;
            let new = SocketAddr::new(ip, port.unwrap_or(current.port()));
            let old = p.set_server_addr(&backend, &server, new)?;
            return Ok(addr_changed(old, new, port.is_some()));
        }
        Command::SetMaxconn {
            backend,
            server,
            maxconn,
        } => p.with_backend(&backend, |b| {
            b.core
                .set_maxconn(std::time::Instant::now(), &server, maxconn)
        })?,
        Command::SetBalance { backend, algorithm } => p.set_algorithm(&backend, algorithm)?,
        Command::AddServer { backend, spec } => p.add_server(&backend, ServerConfig::new(spec))?,
        Command::DelServer { backend, server } => p.remove_server(&backend, &server)?,
        Command::ShowTable { backend, key } => {
            let now = std::time::Instant::now();
            let Some(backend) = backend else {
                let mut core = p.shared.lock();
                let mut out = String::new();
                for (name, b) in core.backends.iter_mut() {
                    if let Some(t) = b.core.stick_table() {
                        out.push_str(&t.header(name, now));
                    }
                }
                return Ok(out);
            };
            return p.with_backend(&backend, |b| {
                let key = table_key(&backend, b, key)?;
                b.core
                    .show_table(now, key)
                    .ok_or_else(|| no_table(&backend))
            });
        }
        Command::ClearTable { backend, key } => p.with_backend(&backend, |b| {
            let key = table_key(&backend, b, key)?;
            let t = b.core.stick_table().ok_or_else(|| no_table(&backend))?;
            match key {
                Some(k) => {
                    t.remove(k);
                }
                None => t.clear(),
            }
            Ok(())
        })?,
        Command::ShowBackend => {
            let mut out = String::from("# name\n");
            for name in p.shared.lock().backends.keys() {
                out.push_str(name);
                out.push('\n');
            }
            return Ok(out);
        }
        Command::ShowStat => return Ok(p.stats().to_csv()),
        Command::ShowMetrics => return Ok(p.stats().to_prometheus()),
    }
    Ok("done\n".to_string())
}

fn no_table(backend: &str) -> Error {
    Error::Command(format!(
        "backend `{backend}` has no stick table (HAProxy: No such table)"
    ))
}

/// `key` as a key of `backend`'s table (an IPv4 key of an `ipv6` table is
/// taken IPv4-mapped, as a client's address is).
fn table_key(backend: &str, b: &mut BackendRt, key: Option<IpAddr>) -> Result<Option<IpAddr>> {
    let Some(k) = key else { return Ok(None) };
    let t = b.core.stick_table().ok_or_else(|| no_table(backend))?;
    t.spec().table_type.key(k).map(Some).ok_or_else(|| {
        Error::Command(format!(
            "key `{k}` does not fit a table of type {}",
            t.spec().table_type.name()
        ))
    })
}

/// HAProxy's answer to `set server ... addr` (`port_given`: the command
/// had `port`), as HAProxy 2.6.12 words it.
fn addr_changed(old: SocketAddr, new: SocketAddr, port_given: bool) -> String {
    let mut out = if old.ip() != new.ip() {
        format!("IP changed from '{}' to '{}'", old.ip(), new.ip())
    } else {
        "no need to change the addr".to_string()
    };
    if port_given {
        if old.port() != new.port() {
            out.push_str(&format!(
                ", port changed from '{}' to '{}'",
                old.port(),
                new.port()
            ));
        } else {
            out.push_str(", no need to change the port");
        }
    }
    out.push_str(" by 'stats socket command'\n");
    out
}

pub(super) async fn stats_listener(p: Proxy, l: TcpListener) {
    loop {
        match l.accept().await {
            Ok((s, _)) => {
                let p = p.clone();
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(Duration::from_secs(5), serve(p, s)).await;
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "stats accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn serve(p: Proxy, mut s: TcpStream) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > 8192 {
            return s.write_all(b"HTTP/1.0 431 Too Large\r\n\r\n").await;
        }
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.lines();
    let req = lines.next().unwrap_or("");
    let len: usize = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0)
        .min(4096);
    while buf.len() < head_end + len {
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = String::from_utf8_lossy(&buf[head_end..buf.len().min(head_end + len)]).to_string();
    let mut parts = req.split(' ');
    let (status, ctype, text) = match (parts.next(), parts.next()) {
        (Some("GET"), Some("/metrics")) => (
            "200 OK",
            "text/plain; version=0.0.4",
            p.stats().to_prometheus(),
        ),
        (Some("GET"), Some("/stats")) => ("200 OK", "text/csv", p.stats().to_csv()),
        (Some("POST"), Some("/command")) => match parse_command(&body).and_then(|c| p.execute(c)) {
            Ok(t) => ("200 OK", "text/plain", t),
            Err(e) => ("400 Bad Request", "text/plain", format!("{e}\n")),
        },
        _ => (
            "404 Not Found",
            "text/plain",
            "try GET /metrics, GET /stats, POST /command\n".to_string(),
        ),
    };
    let resp = format!("HTTP/1.0 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}", text.len());
    s.write_all(resp.as_bytes()).await?;
    s.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addr_changes_are_reported_as_haproxy_does() {
        // The answers of HAProxy 2.6.12 to the same commands.
        let a = |s: &str| s.parse::<SocketAddr>().unwrap();
        let by = " by 'stats socket command'\n";
        for (old, new, port_given, text) in [
            (
                "127.0.0.1:80",
                "127.0.0.2:80",
                false,
                "IP changed from '127.0.0.1' to '127.0.0.2'",
            ),
            (
                "127.0.0.2:80",
                "127.0.0.3:81",
                true,
                "IP changed from '127.0.0.2' to '127.0.0.3', port changed from '80' to '81'",
            ),
            (
                "127.0.0.3:81",
                "127.0.0.3:81",
                true,
                "no need to change the addr, no need to change the port",
            ),
            (
                "127.0.0.3:81",
                "127.0.0.3:81",
                false,
                "no need to change the addr",
            ),
        ] {
            assert_eq!(
                addr_changed(a(old), a(new), port_given),
                format!("{text}{by}")
            );
        }
    }

    #[test]
    fn commands_parse() {
        assert_eq!(
            parse_command("set weight web/s1 10").unwrap(),
            Command::SetWeight {
                backend: "web".into(),
                server: "s1".into(),
                weight: 10
            }
        );
        assert_eq!(
            parse_command("set weight web/s1 50%").unwrap(),
            Command::SetWeightPercent {
                backend: "web".into(),
                server: "s1".into(),
                percent: 50
            }
        );
        assert_eq!(
            parse_command("set server web/s1 state drain").unwrap(),
            Command::SetState {
                backend: "web".into(),
                server: "s1".into(),
                state: AdminState::Drain
            }
        );
        assert!(matches!(
            parse_command("set balance web leastconn").unwrap(),
            Command::SetBalance {
                algorithm: Algorithm::LeastConn,
                ..
            }
        ));
        // Options follow the name, as on HAProxy's balance line.
        assert!(matches!(
            parse_command("set balance web hdr(Host) use_domain_only").unwrap(),
            Command::SetBalance {
                algorithm: Algorithm::Hdr { name, use_domain_only: true },
                ..
            } if name == "Host"
        ));
        assert!(parse_command("set balance web url_param").is_err());
        let Command::AddServer { spec, .. } =
            parse_command("add server web/s9 127.0.0.1:9 weight 5 backup maxconn 3 disabled")
                .unwrap()
        else {
            panic!()
        };
        assert_eq!(
            (spec.weight, spec.backup, spec.maxconn, spec.disabled),
            (5, true, 3, true)
        );
        // HAProxy's other spellings.
        let (backend, server) = ("web".to_string(), "s1".to_string());
        for (line, cmd) in [
            (
                "set server web/s1 weight 7",
                Command::SetWeight {
                    backend: backend.clone(),
                    server: server.clone(),
                    weight: 7,
                },
            ),
            (
                "disable server web/s1",
                Command::SetState {
                    backend: backend.clone(),
                    server: server.clone(),
                    state: AdminState::Maint,
                },
            ),
            (
                "enable server web/s1",
                Command::SetState {
                    backend: backend.clone(),
                    server: server.clone(),
                    state: AdminState::Ready,
                },
            ),
            (
                "get weight web/s1",
                Command::GetWeight {
                    backend: backend.clone(),
                    server: server.clone(),
                },
            ),
            (
                "set maxconn server web/s1 20",
                Command::SetMaxconn {
                    backend: backend.clone(),
                    server: server.clone(),
                    maxconn: 20,
                },
            ),
            ("show backend", Command::ShowBackend),
            (
                "set server web/s1 addr 127.0.0.2",
                Command::SetAddr {
                    backend: backend.clone(),
                    server: server.clone(),
                    ip: "127.0.0.2".parse().unwrap(),
                    port: None,
                },
            ),
            (
                "set server web/s1 addr ::1 port 8080",
                Command::SetAddr {
                    backend: backend.clone(),
                    server: server.clone(),
                    ip: "::1".parse().unwrap(),
                    port: Some(8080),
                },
            ),
        ] {
            assert_eq!(parse_command(line).unwrap(), cmd, "{line}");
        }
        for bad in [
            "set server web/s1 addr 127.0.0.1:80",
            "set server web/s1 addr 127.0.0.1 port 0",
            "set server web/s1 addr 127.0.0.1 port",
            "set server web/s1 addr 127.0.0.1 weight 3",
            "set maxconn server web/s1",
            "set maxconn server web/s1 many",
            "enable server web",
            "get weight web",
            "",
            "set weight web 1",
            "set weight web/s1 x",
            "set weight web/s1 x%",
            "set weight web/s1 -5%",
            "set server web/s1 state sleepy",
            "add server web/s 1.2.3",
            "frobnicate",
        ] {
            assert!(parse_command(bad).is_err(), "{bad}");
        }
    }
}
