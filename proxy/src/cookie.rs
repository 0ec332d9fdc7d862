//! Cookie-based persistence in HTTP mode (HAProxy's backend `cookie <name>
//! insert [indirect] [nocache] [httponly] [secure] [domain <d>]` with the
//! server keyword `cookie <value>`), as pure header work: find the
//! persistence cookie in a request, strip it (`indirect`), and set it on a
//! response. Which server a value names, and whether that server may take
//! the request, is the backend core's job
//! ([`Backend::cookie_server`](crate::backend::Backend::cookie_server),
//! [`Backend::acquire_direct`](crate::backend::Backend::acquire_direct)).
//!
//! The rules are HAProxy 2.6's (`src/http_ana.c`:
//! `http_manage_client_side_cookies`, `http_manage_server_side_cookies`,
//! the `Set-Cookie` insertion in `http_process_res_common`,
//! `http_check_response_for_cacheability`), checked against HAProxy 2.6.12.

use hyper::header::{HeaderMap, HeaderValue, CACHE_CONTROL, COOKIE, SET_COOKIE};

/// A backend's persistence cookie (insert mode).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cookie {
    /// The cookie's name (`SERVERID`).
    pub name: String,
    /// `indirect`: the cookie is removed from the requests sent to the
    /// servers.
    pub indirect: bool,
    /// `nocache`: a response that gets the cookie and could be cached also
    /// gets `Cache-control: private`.
    pub nocache: bool,
    /// `httponly`: the `HttpOnly` attribute.
    pub httponly: bool,
    /// `secure`: the `Secure` attribute.
    pub secure: bool,
    /// `domain`: the `domain=` attribute.
    pub domain: Option<String>,
}

/// The cookies of a `Cookie` header value: `(name, value)`, trimmed; `;`
/// and `,` separate them, as in HAProxy; attributes (`$Path`) and cookies
/// without `=` are skipped.
fn pairs(header: &str) -> impl Iterator<Item = (&str, &str)> {
    header.split([';', ',']).filter_map(|c| {
        let (n, v) = c.split_once('=')?;
        let n = n.trim();
        (!n.starts_with('$')).then_some((n, v.trim()))
    })
}

impl Cookie {
    /// The values of this cookie in the request, in order, without a date
    /// part (`SRV|<lastseen>|<firstseen>`, from HAProxy's `maxidle` and
    /// `maxlife`). An empty value names no server (HAProxy ignores it).
    pub fn values<'a>(&'a self, headers: &'a HeaderMap) -> impl Iterator<Item = &'a str> + 'a {
        headers
            .get_all(COOKIE)
            .iter()
            .filter_map(|h| h.to_str().ok())
            .flat_map(pairs)
            .filter(move |(n, _)| *n == self.name)
            .map(|(_, v)| v.split('|').next().unwrap_or(""))
            .filter(|v| !v.is_empty())
    }

    /// `indirect`: removes this cookie from the request's `Cookie` headers
    /// (a header left empty goes), whatever server it named, as HAProxy's
    /// insert + indirect mode does.
    pub fn strip_request(&self, headers: &mut HeaderMap) {
        let ours = |h: &HeaderValue| {
            h.to_str()
                .is_ok_and(|s| pairs(s).any(|(n, _)| n == self.name))
        };
        if !headers.get_all(COOKIE).iter().any(ours) {
            return;
        }
        let kept: Vec<HeaderValue> = headers
            .get_all(COOKIE)
            .iter()
            .filter_map(|h| {
                if !ours(h) {
                    return Some(h.clone());
                }
                let rest: Vec<&str> = h
                    .to_str()
                    .unwrap_or("")
                    .split([';', ','])
                    .map(str::trim)
                    .filter(|c| {
                        !c.is_empty()
                            && c.split_once('=').is_none_or(|(n, _)| n.trim() != self.name)
                    })
                    .collect();
                (!rest.is_empty())
                    .then(|| HeaderValue::from_str(&rest.join("; ")).ok())
                    .flatten()
            })
            .collect();
        headers.remove(COOKIE);
        for v in kept {
            headers.append(COOKIE, v);
        }
    }

    /// The response side. The server's own `Set-Cookie` for this name goes
    /// (insert mode without `preserve`). Unless the request went `direct`ly
    /// to the server its cookie named, the cookie is set: `NAME=VALUE;
    /// path=/`, or, for a server without a cookie value, an expired
    /// `NAME=; Expires=Thu, 01-Jan-1970 00:00:01 GMT; path=/`, then `;
    /// domain=`, `; HttpOnly`, `; Secure`. With `nocache`, a response that
    /// gets it and is cacheable ([`cacheable`]) also gets `Cache-control:
    /// private`, after its own `Cache-Control` headers.
    pub fn respond(
        &self,
        headers: &mut HeaderMap,
        server_value: Option<&str>,
        direct: bool,
        request_cacheable: bool,
        status: u16,
    ) {
        if headers.get_all(SET_COOKIE).iter().any(|h| self.is_ours(h)) {
            let kept: Vec<HeaderValue> = headers
                .get_all(SET_COOKIE)
                .iter()
                .filter(|h| !self.is_ours(h))
                .cloned()
                .collect();
            headers.remove(SET_COOKIE);
            for v in kept {
                headers.append(SET_COOKIE, v);
            }
        }
        if direct {
            return;
        }
        let mut c = match server_value {
            Some(v) => format!("{}={v}; path=/", self.name),
            None => format!(
                "{}=; Expires=Thu, 01-Jan-1970 00:00:01 GMT; path=/",
                self.name
            ),
        };
        if let Some(d) = &self.domain {
            c.push_str("; domain=");
            c.push_str(d);
        }
        if self.httponly {
            c.push_str("; HttpOnly");
        }
        if self.secure {
            c.push_str("; Secure");
        }
        if let Ok(v) = HeaderValue::from_str(&c) {
            headers.append(SET_COOKIE, v);
        }
        if self.nocache && cacheable(headers, request_cacheable, status) {
            headers.append(CACHE_CONTROL, HeaderValue::from_static("private"));
        }
    }

    fn is_ours(&self, h: &HeaderValue) -> bool {
        h.to_str().is_ok_and(|s| {
            s.split_once('=')
                .is_some_and(|(n, _)| n.trim() == self.name)
        })
    }
}

/// Whether a request's method lets its response be cached (HAProxy's
/// `TX_CACHEABLE` from `http_wait_for_request`: GET, HEAD, OPTIONS, TRACE).
pub fn cacheable_method(method: &hyper::Method) -> bool {
    use hyper::Method;
    [Method::GET, Method::HEAD, Method::OPTIONS, Method::TRACE].contains(method)
}

/// HAProxy's `http_check_response_for_cacheability`: a response is
/// cacheable when its request was (or it says `public`), it is not
/// interim, no `Pragma: no-cache`, no `private`, `no-cache`, `no-store`,
/// `s-maxage=0` or `max-age=0` (unless `s-maxage` follows), and it has
/// freshness information (`max-age`, `s-maxage`, `Expires`) or a validator
/// (`ETag`, `Last-Modified`).
pub fn cacheable(headers: &HeaderMap, request_cacheable: bool, status: u16) -> bool {
    if status < 200 {
        return false;
    }
    if headers
        .get(hyper::header::PRAGMA)
        .is_some_and(|p| p.as_bytes().eq_ignore_ascii_case(b"no-cache"))
    {
        return false;
    }
    let mut cacheable = request_cacheable;
    let (mut fresh, mut null_maxage) = (false, false);
    let directives = headers
        .get_all(CACHE_CONTROL)
        .iter()
        .filter_map(|h| h.to_str().ok())
        .flat_map(|h| h.split(','))
        .map(|d| d.trim().to_ascii_lowercase());
    for d in directives {
        match d.as_str() {
            "public" => cacheable = true,
            "max-age=0" => null_maxage = true,
            "private" | "no-cache" | "no-store" | "s-maxage=0" => cacheable = false,
            d if d.starts_with("s-maxage") => {
                fresh = true;
                null_maxage = false;
            }
            d if d.starts_with("max-age") => fresh = true,
            _ => {}
        }
    }
    if null_maxage {
        return false;
    }
    let has = |n: &str| headers.contains_key(n);
    cacheable && (fresh || has("expires") || has("etag") || has("last-modified"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cookie() -> Cookie {
        Cookie {
            name: "SERVERID".into(),
            indirect: true,
            nocache: true,
            httponly: false,
            secure: false,
            domain: None,
        }
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(*n, HeaderValue::from_static(v));
        }
        h
    }

    fn all(h: &HeaderMap, n: &str) -> Vec<String> {
        h.get_all(n)
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect()
    }

    /// Parsing as HAProxy 2.6.12 did for `Cookie: a=1; SERVERID=c1; b=2`,
    /// `SERVERID = c1 ,x=1`, `SERVERID=zz; SERVERID=c1` (the first value
    /// naming a usable server wins), `SERVERID=` (ignored) and
    /// `SERVERID=c1|abcde` (the date part is not the server's).
    #[test]
    fn values_in_order_without_dates_or_empties() {
        let c = cookie();
        let h = headers(&[
            ("cookie", "a=1; SERVERID=zz; b=2"),
            (
                "cookie",
                " SERVERID = c1 ,x=1; $Path=/; SERVERID=; SERVERID=c2|abcde",
            ),
        ]);
        assert_eq!(c.values(&h).collect::<Vec<_>>(), ["zz", "c1", "c2"]);
        assert_eq!(c.values(&headers(&[("cookie", "SERVERIDX=1")])).count(), 0);
    }

    /// What the server saw behind HAProxy 2.6.12 with `insert indirect`:
    /// `a=1; SERVERID=c1; b=2` -> `a=1; b=2`; `SERVERID=c1` and `x=y` in two
    /// headers -> only `x=y`.
    #[test]
    fn indirect_strips_the_cookie_and_empty_headers() {
        let c = cookie();
        let mut h = headers(&[("cookie", "a=1; SERVERID=c1; b=2")]);
        c.strip_request(&mut h);
        assert_eq!(all(&h, "cookie"), ["a=1; b=2"]);
        let mut h = headers(&[("cookie", "SERVERID=c1"), ("cookie", "x=y")]);
        c.strip_request(&mut h);
        assert_eq!(all(&h, "cookie"), ["x=y"]);
        let mut h = headers(&[("cookie", "x=y")]);
        c.strip_request(&mut h);
        assert_eq!(all(&h, "cookie"), ["x=y"]);
    }

    /// HAProxy 2.6.12's responses: `SERVERID=c2; path=/` on a balanced
    /// request; `SERVERID=; Expires=Thu, 01-Jan-1970 00:00:01 GMT; path=/`
    /// from a server without a cookie value; nothing on a direct one; the
    /// server's own `SERVERID` cookie removed, `APP=1` kept; attributes in
    /// the order `domain`, `HttpOnly`, `Secure`.
    #[test]
    fn set_cookie_as_haproxy_writes_it() {
        let mut c = cookie();
        let mut h = headers(&[
            ("set-cookie", "SERVERID=mine; path=/"),
            ("set-cookie", "APP=1"),
        ]);
        c.respond(&mut h, Some("c2"), false, false, 200);
        assert_eq!(all(&h, "set-cookie"), ["APP=1", "SERVERID=c2; path=/"]);
        let mut h = HeaderMap::new();
        c.respond(&mut h, None, false, false, 200);
        assert_eq!(
            all(&h, "set-cookie"),
            ["SERVERID=; Expires=Thu, 01-Jan-1970 00:00:01 GMT; path=/"]
        );
        let mut h = headers(&[("set-cookie", "SERVERID=mine; path=/")]);
        c.respond(&mut h, Some("c1"), true, true, 200);
        assert!(h.is_empty(), "{h:?}");
        c.httponly = true;
        c.secure = true;
        c.domain = Some(".example.com".into());
        let mut h = HeaderMap::new();
        c.respond(&mut h, Some("c1"), false, false, 200);
        assert_eq!(
            all(&h, "set-cookie"),
            ["SERVERID=c1; path=/; domain=.example.com; HttpOnly; Secure"]
        );
    }

    /// `nocache` on HAProxy 2.6.12: a GET whose response has
    /// `Last-Modified`, or `Cache-Control: max-age=60` (kept, `private`
    /// added after it), gets `Cache-control: private`; a plain GET response
    /// (no freshness, no validator), a POST's, or a direct one's do not.
    #[test]
    fn nocache_marks_cacheable_responses_only() {
        let c = cookie();
        let mut h = headers(&[("last-modified", "Wed, 21 Oct 2015 07:28:00 GMT")]);
        c.respond(&mut h, Some("c1"), false, true, 200);
        assert_eq!(all(&h, "cache-control"), ["private"]);
        let mut h = headers(&[("cache-control", "max-age=60")]);
        c.respond(&mut h, Some("c1"), false, true, 200);
        assert_eq!(all(&h, "cache-control"), ["max-age=60", "private"]);
        for (pairs, req) in [
            (&[][..], true),
            (&[("last-modified", "x")][..], false),
            (
                &[("etag", "\"1\""), ("cache-control", "no-store")][..],
                true,
            ),
            (&[("expires", "x"), ("pragma", "no-cache")][..], true),
            (&[("cache-control", "max-age=0")][..], true),
        ] {
            let mut h = headers(pairs);
            c.respond(&mut h, Some("c1"), false, req, 200);
            assert!(
                !h.contains_key("cache-control") || pairs.iter().any(|p| p.0 == "cache-control")
            );
            assert!(
                !all(&h, "cache-control").contains(&"private".to_string()),
                "{pairs:?}"
            );
        }
        assert!(cacheable(
            &headers(&[("cache-control", "public, max-age=5")]),
            false,
            200
        ));
        assert!(cacheable(
            &headers(&[("cache-control", "max-age=0, s-maxage=9")]),
            true,
            200
        ));
        assert!(!cacheable(&headers(&[("etag", "x")]), true, 101));
    }
}
