//! # halyard-proxy
//!
//! A load-balancing proxy core that does HAProxy's high-availability job:
//! frontends, backends and servers, balancing algorithms, health checks,
//! backup servers, connection limits and queues.
//!
//! Nothing public exists yet: the proxy lands with its issue.
#![deny(unsafe_code)]
