//! What an action is asked to do: the action, and its context (instance,
//! parameters, timeout, interval, clone and notify information).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// Default operation timeout (Pacemaker's default, 20 s).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);

/// The actions of an agent. [`Action::as_str`] gives the OCF name (argv\[1\]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Action {
    /// `start`.
    Start,
    /// `stop`.
    Stop,
    /// `monitor` (recurring when the context has an interval, else a probe).
    Monitor,
    /// `promote`.
    Promote,
    /// `demote`.
    Demote,
    /// `notify` (clone notifications).
    Notify,
    /// `reload` (parameters marked reloadable changed).
    Reload,
    /// `migrate_to` (on the source node).
    MigrateTo,
    /// `migrate_from` (on the target node).
    MigrateFrom,
    /// `validate-all`.
    Validate,
    /// `meta-data`.
    MetaData,
}

impl Action {
    /// Every action, in a fixed order.
    pub const ALL: [Action; 11] = [
        Action::Start,
        Action::Stop,
        Action::Monitor,
        Action::Promote,
        Action::Demote,
        Action::Notify,
        Action::Reload,
        Action::MigrateTo,
        Action::MigrateFrom,
        Action::Validate,
        Action::MetaData,
    ];

    /// The OCF action name, as passed in argv\[1\].
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::Stop => "stop",
            Self::Monitor => "monitor",
            Self::Promote => "promote",
            Self::Demote => "demote",
            Self::Notify => "notify",
            Self::Reload => "reload",
            Self::MigrateTo => "migrate_to",
            Self::MigrateFrom => "migrate_from",
            Self::Validate => "validate-all",
            Self::MetaData => "meta-data",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Action {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Action::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| format!("unknown action {s:?}"))
    }
}

/// The role a monitor checks for (promotable resources).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Role {
    /// `Promoted` (formerly Master).
    Promoted,
    /// `Unpromoted` (formerly Slave).
    Unpromoted,
}

impl Role {
    /// Pacemaker's name for the role (`Promoted` / `Unpromoted`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Promoted => "Promoted",
            Self::Unpromoted => "Unpromoted",
        }
    }
}

/// Clone information (Pacemaker's `CRM_meta_clone*` variables).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CloneInfo {
    /// This instance's number (`CRM_meta_clone`).
    pub instance: u32,
    /// `clone-max`.
    pub clone_max: u32,
    /// `clone-node-max`.
    pub clone_node_max: u32,
    /// `globally-unique`.
    pub globally_unique: bool,
    /// `notify`: whether notifications are sent.
    pub notify: bool,
    /// `promoted-max` (promotable clones only).
    pub promoted_max: Option<u32>,
    /// `promoted-node-max` (promotable clones only).
    pub promoted_node_max: Option<u32>,
}

/// Whether a notification comes before or after the operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NotifyType {
    /// Before.
    Pre,
    /// After.
    Post,
}

/// Notify information (Pacemaker's `CRM_meta_notify_*` variables).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotifyInfo {
    /// `pre` or `post`.
    pub kind: NotifyType,
    /// The operation being notified about (`start`, `stop`, `promote`, `demote`).
    pub operation: String,
    /// The lists, keyed by their name without prefix (`active_resource`,
    /// `start_uname`, ...). Each becomes a space-separated value; an empty list
    /// is a single space, as Pacemaker sends it.
    pub lists: BTreeMap<String, Vec<String>>,
}

/// Everything an action needs besides the action itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionContext {
    /// The resource instance name (`OCF_RESOURCE_INSTANCE`). Pacemaker runs an
    /// anonymous clone's instances with the primitive's name (`st`, not `st:0`);
    /// notify lists still name instances (`st:0`).
    pub instance: String,
    /// Instance parameters (`OCF_RESKEY_<name>`), in name order.
    pub params: BTreeMap<String, String>,
    /// How long the action may take. Zero is refused (could not execute).
    pub timeout: Duration,
    /// The recurring interval of a monitor; zero for one-shot actions and probes.
    pub interval: Duration,
    /// Monitor depth (`OCF_CHECK_LEVEL`): 0 is the cheapest check.
    pub depth: u32,
    /// The role a recurring monitor expects (promotable resources).
    pub role: Option<Role>,
    /// The node the action runs on (`CRM_meta_on_node`).
    pub node: Option<String>,
    /// Clone information, if the resource is a clone instance.
    pub clone: Option<CloneInfo>,
    /// Notify information, for the `notify` action.
    pub notify: Option<NotifyInfo>,
    /// Migration source and target node, for `migrate_to` / `migrate_from`.
    pub migrate: Option<(String, String)>,
    /// Further `CRM_meta_<name>` values to pass unchanged (name without prefix).
    pub extra_meta: BTreeMap<String, String>,
}

impl ActionContext {
    /// A context for `instance` with no parameters and the default timeout.
    pub fn new(instance: impl Into<String>) -> Self {
        Self {
            instance: instance.into(),
            params: BTreeMap::new(),
            timeout: DEFAULT_TIMEOUT,
            interval: Duration::ZERO,
            depth: 0,
            role: None,
            node: None,
            clone: None,
            notify: None,
            migrate: None,
            extra_meta: BTreeMap::new(),
        }
    }

    /// Adds a parameter.
    pub fn param(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.params.insert(name.into(), value.into());
        self
    }

    /// Sets the timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the interval (recurring monitor).
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// Sets the monitor depth.
    pub fn depth(mut self, depth: u32) -> Self {
        self.depth = depth;
        self
    }

    /// Sets the expected role.
    pub fn role(mut self, role: Role) -> Self {
        self.role = Some(role);
        self
    }

    /// True for a monitor with no interval: a probe.
    pub fn is_probe(&self) -> bool {
        self.interval.is_zero()
    }

    /// The `CRM_meta_*` variables Pacemaker passes for `action` (names without the
    /// `CRM_meta_` prefix), in name order. See AGENTS.md: every op gets `timeout`
    /// (ms) and `on_node`; recurring monitors add `interval`, `name` and `role`;
    /// probes have no `interval`.
    pub fn meta(&self, action: Action) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        m.insert("timeout".to_string(), self.timeout.as_millis().to_string());
        if let Some(node) = &self.node {
            m.insert("on_node".to_string(), node.clone());
        }
        if !self.interval.is_zero() {
            m.insert(
                "interval".to_string(),
                self.interval.as_millis().to_string(),
            );
            m.insert("name".to_string(), action.as_str().to_string());
        }
        if let Some(role) = self.role {
            m.insert("role".to_string(), role.as_str().to_string());
        }
        if let Some(c) = &self.clone {
            m.insert("clone".into(), c.instance.to_string());
            m.insert("clone_max".into(), c.clone_max.to_string());
            m.insert("clone_node_max".into(), c.clone_node_max.to_string());
            m.insert("globally_unique".into(), c.globally_unique.to_string());
            m.insert("notify".into(), c.notify.to_string());
            if let Some(p) = c.promoted_max {
                m.insert("promoted_max".into(), p.to_string());
                m.insert("master_max".into(), p.to_string());
            }
            if let Some(p) = c.promoted_node_max {
                m.insert("promoted_node_max".into(), p.to_string());
                m.insert("master_node_max".into(), p.to_string());
            }
        }
        if let Some(n) = &self.notify {
            let kind = match n.kind {
                NotifyType::Pre => "pre",
                NotifyType::Post => "post",
            };
            m.insert("notify_type".into(), kind.into());
            m.insert("notify_operation".into(), n.operation.clone());
            // Pacemaker also names the notification by its key: the operation for
            // "pre", the completed state for "post".
            let key_op = match (n.kind, n.operation.as_str()) {
                (NotifyType::Post, "start") => "running",
                (NotifyType::Post, "stop") => "stopped",
                (NotifyType::Post, "promote") => "promoted",
                (NotifyType::Post, "demote") => "demoted",
                (_, op) => op,
            };
            m.insert("notify_key_type".into(), kind.into());
            m.insert("notify_key_operation".into(), key_op.into());
            for (k, v) in &n.lists {
                let joined = if v.is_empty() {
                    " ".to_string()
                } else {
                    v.join(" ")
                };
                // The pre-2.0 names of the promoted/unpromoted lists are still sent.
                if let Some(rest) = k.strip_prefix("promoted_") {
                    m.insert(format!("notify_master_{rest}"), joined.clone());
                } else if let Some(rest) = k.strip_prefix("unpromoted_") {
                    m.insert(format!("notify_slave_{rest}"), joined.clone());
                }
                m.insert(format!("notify_{k}"), joined);
            }
        }
        if let Some((src, dst)) = &self.migrate {
            m.insert("migrate_source".into(), src.clone());
            m.insert("migrate_target".into(), dst.clone());
        }
        for (k, v) in &self.extra_meta {
            m.insert(k.clone(), v.clone());
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_has_no_interval_recurring_monitor_has_one() {
        let probe = ActionContext::new("r").meta(Action::Monitor);
        assert_eq!(probe.get("timeout").map(String::as_str), Some("20000"));
        assert!(!probe.contains_key("interval"));
        let rec = ActionContext::new("r")
            .interval(Duration::from_secs(10))
            .role(Role::Promoted)
            .meta(Action::Monitor);
        assert_eq!(rec["interval"], "10000");
        assert_eq!(rec["name"], "monitor");
        assert_eq!(rec["role"], "Promoted");
    }

    #[test]
    fn empty_notify_list_is_a_single_space() {
        let mut ctx = ActionContext::new("st");
        let mut lists = BTreeMap::new();
        lists.insert("active_resource".to_string(), vec![]);
        lists.insert(
            "start_resource".to_string(),
            vec!["st:0".into(), "st:1".into()],
        );
        ctx.notify = Some(NotifyInfo {
            kind: NotifyType::Post,
            operation: "start".into(),
            lists,
        });
        let m = ctx.meta(Action::Notify);
        assert_eq!(m["notify_active_resource"], " ");
        assert_eq!(m["notify_start_resource"], "st:0 st:1");
        assert_eq!(m["notify_type"], "post");
    }

    #[test]
    fn action_names_round_trip() {
        for a in Action::ALL {
            assert_eq!(a.as_str().parse::<Action>().unwrap(), a);
        }
        assert!("bogus".parse::<Action>().is_err());
    }
}
