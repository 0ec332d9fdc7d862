//! Typed agent meta-data, parsed from OCF 1.0 and 1.1 XML, and parameter
//! validation against it.
//!
//! The parser is a pull parser over untrusted bytes: it never panics, ignores what
//! it does not know (`special`, unknown elements, `lang` variants after the first)
//! and fails with a clear [`Error::MetaData`] when the document is not an OCF
//! `resource-agent`.

use crate::error::{Error, Result};
use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// The type of a parameter's value (`content type=`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ContentType {
    /// `boolean`.
    Boolean,
    /// `string` (also the default when the agent gives none).
    String,
    /// `integer`.
    Integer,
    /// `select` with its options (OCF 1.1).
    Select(Vec<String>),
    /// Any other type an agent declares (`time`, `percentage`, ...), kept verbatim.
    Other(String),
}

/// One `<parameter>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParameterSpec {
    /// The name (`OCF_RESKEY_<name>`).
    pub name: String,
    /// `required="1"`.
    pub required: bool,
    /// `unique="1"` (deprecated in 1.1 in favour of `unique-group`).
    pub unique: bool,
    /// `unique-group` (OCF 1.1).
    pub unique_group: Option<String>,
    /// `reloadable="1"` (OCF 1.1).
    pub reloadable: bool,
    /// A `<deprecated>` element (OCF 1.1).
    pub deprecated: bool,
    /// The value type.
    pub content: ContentType,
    /// The default value.
    pub default: Option<String>,
    /// The first `<shortdesc>`.
    pub shortdesc: Option<String>,
}

/// One `<action>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionSpec {
    /// The action name (`start`, `monitor`, ...).
    pub name: String,
    /// The advised timeout.
    pub timeout: Option<Duration>,
    /// The advised interval (monitors).
    pub interval: Option<Duration>,
    /// `depth` (monitors).
    pub depth: Option<u32>,
    /// `role` (monitors of promotable agents), as written.
    pub role: Option<String>,
    /// `start-delay`.
    pub start_delay: Option<Duration>,
}

/// An agent's meta-data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    /// `resource-agent name=`.
    pub name: String,
    /// `resource-agent version=` (the agent's own version).
    pub agent_version: Option<String>,
    /// The `<version>` element: the OCF API version the agent implements ("1.0",
    /// "1.1").
    pub ocf_version: Option<String>,
    /// The first top-level `<shortdesc>`.
    pub shortdesc: Option<String>,
    /// The parameters, in document order.
    pub parameters: Vec<ParameterSpec>,
    /// The actions, in document order.
    pub actions: Vec<ActionSpec>,
}

/// Upper bound on the meta-data document size accepted.
pub const MAX_METADATA_BYTES: usize = 4 << 20;

impl Metadata {
    /// The parameter named `name`.
    pub fn parameter(&self, name: &str) -> Option<&ParameterSpec> {
        self.parameters.iter().find(|p| p.name == name)
    }

    /// The first action named `name`.
    pub fn action(&self, name: &str) -> Option<&ActionSpec> {
        self.actions.iter().find(|a| a.name == name)
    }

    /// True if the agent advertises `promote` and `demote`.
    pub fn is_promotable(&self) -> bool {
        self.action("promote").is_some() && self.action("demote").is_some()
    }

    /// Parses an OCF 1.0 or 1.1 meta-data document. `agent` names the agent in
    /// errors.
    pub fn parse(agent: &str, xml: &[u8]) -> Result<Self> {
        let err = |reason: String| Error::MetaData {
            agent: agent.to_string(),
            reason,
        };
        if xml.len() > MAX_METADATA_BYTES {
            return Err(err(format!(
                "document is {} bytes, more than the {} accepted",
                xml.len(),
                MAX_METADATA_BYTES
            )));
        }
        let text = std::str::from_utf8(xml).map_err(|e| err(format!("not UTF-8: {e}")))?;
        parse_doc(text).map_err(err)
    }
}

fn attrs(e: &BytesStart<'_>) -> std::result::Result<BTreeMap<String, String>, String> {
    let mut m = BTreeMap::new();
    for a in e.attributes() {
        let a = a.map_err(|e| format!("bad attribute: {e}"))?;
        let k = String::from_utf8_lossy(a.key.as_ref()).into_owned();
        let v = a
            .unescape_value()
            .map_err(|e| format!("bad attribute value: {e}"))?
            .into_owned();
        m.insert(k, v);
    }
    Ok(m)
}

fn flag(m: &BTreeMap<String, String>, k: &str) -> bool {
    matches!(
        m.get(k).map(|s| s.trim()),
        Some("1" | "true" | "yes" | "on")
    )
}

/// Parses an OCF/Pacemaker duration: a number with an optional unit (`ms`, `s`,
/// `m`/`min`, `h`); no unit means seconds.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    let ms = match unit.trim() {
        "" | "s" | "sec" | "secs" => n.checked_mul(1000)?,
        "ms" | "msec" | "msecs" => n,
        "m" | "min" | "mins" => n.checked_mul(60_000)?,
        "h" | "hr" | "hrs" => n.checked_mul(3_600_000)?,
        "us" | "usec" | "usecs" => return Some(Duration::from_micros(n)),
        _ => return None,
    };
    Some(Duration::from_millis(ms))
}

fn parse_doc(text: &str) -> std::result::Result<Metadata, String> {
    let mut reader = Reader::from_str(text);
    reader.config_mut().trim_text(true);
    let mut stack: Vec<String> = Vec::new();
    let mut md: Option<Metadata> = None;
    let mut cur_param: Option<ParameterSpec> = None;
    let mut text_buf = String::new();
    loop {
        let ev = reader
            .read_event()
            .map_err(|e| format!("XML error at byte {}: {e}", reader.buffer_position()))?;
        match ev {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let empty = matches!(ev, Event::Empty(_));
                let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                let a = attrs(e)?;
                if stack.len() > 64 {
                    return Err("elements nested deeper than 64".into());
                }
                match (stack.len(), name.as_str()) {
                    (0, "resource-agent") => {
                        md = Some(Metadata {
                            name: a.get("name").cloned().unwrap_or_default(),
                            agent_version: a.get("version").cloned(),
                            ocf_version: None,
                            shortdesc: None,
                            parameters: Vec::new(),
                            actions: Vec::new(),
                        });
                    }
                    (0, other) => {
                        return Err(format!(
                            "root element is <{other}>, expected <resource-agent>"
                        ))
                    }
                    _ => {}
                }
                let parent = stack.last().map(String::as_str);
                match (parent, name.as_str()) {
                    (Some("parameters"), "parameter") => {
                        let pname = a
                            .get("name")
                            .filter(|n| !n.is_empty())
                            .ok_or("a <parameter> has no name")?;
                        cur_param = Some(ParameterSpec {
                            name: pname.clone(),
                            required: flag(&a, "required"),
                            unique: flag(&a, "unique"),
                            unique_group: a.get("unique-group").cloned(),
                            reloadable: flag(&a, "reloadable"),
                            deprecated: flag(&a, "deprecated"),
                            content: ContentType::String,
                            default: None,
                            shortdesc: None,
                        });
                    }
                    (Some("parameter"), "deprecated") => {
                        if let Some(p) = cur_param.as_mut() {
                            p.deprecated = true;
                        }
                    }
                    (Some("parameter"), "content") => {
                        if let Some(p) = cur_param.as_mut() {
                            p.default = a.get("default").cloned();
                            p.content = match a.get("type").map(String::as_str) {
                                None | Some("string") => ContentType::String,
                                Some("boolean") => ContentType::Boolean,
                                Some("integer") => ContentType::Integer,
                                Some("select") => ContentType::Select(Vec::new()),
                                Some(other) => ContentType::Other(other.to_string()),
                            };
                        }
                    }
                    (Some("content"), "option") => {
                        if let Some(ParameterSpec {
                            content: ContentType::Select(opts),
                            ..
                        }) = cur_param.as_mut()
                        {
                            if let Some(v) = a.get("value") {
                                opts.push(v.clone());
                            }
                        }
                    }
                    (Some("actions"), "action") => {
                        let aname = a
                            .get("name")
                            .filter(|n| !n.is_empty())
                            .ok_or("an <action> has no name")?;
                        if let Some(m) = md.as_mut() {
                            m.actions.push(ActionSpec {
                                name: aname.clone(),
                                timeout: a.get("timeout").and_then(|s| parse_duration(s)),
                                interval: a.get("interval").and_then(|s| parse_duration(s)),
                                depth: a.get("depth").and_then(|s| s.trim().parse().ok()),
                                role: a.get("role").cloned(),
                                start_delay: a.get("start-delay").and_then(|s| parse_duration(s)),
                            });
                        }
                    }
                    _ => {}
                }
                if empty {
                    end_element(&mut stack, &name, &mut md, &mut cur_param, &text_buf);
                } else {
                    stack.push(name);
                    text_buf.clear();
                }
            }
            Event::Text(t) => {
                let s = t.unescape().map_err(|e| format!("bad text: {e}"))?;
                text_buf.push_str(&s);
            }
            Event::CData(t) => {
                text_buf.push_str(&String::from_utf8_lossy(&t));
            }
            Event::End(e) => {
                let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                if stack.last() != Some(&name) {
                    return Err(format!("mismatched </{name}>"));
                }
                stack.pop();
                end_element(&mut stack, &name, &mut md, &mut cur_param, &text_buf);
                text_buf.clear();
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !stack.is_empty() {
        return Err(format!("document ends inside <{}>", stack.join("><")));
    }
    md.ok_or_else(|| "no <resource-agent> element".to_string())
}

/// Handles the end of element `name`; `stack` no longer contains it.
fn end_element(
    stack: &mut [String],
    name: &str,
    md: &mut Option<Metadata>,
    cur_param: &mut Option<ParameterSpec>,
    text: &str,
) {
    let parent = stack.last().map(String::as_str);
    match (parent, name) {
        (Some("resource-agent"), "version") => {
            if let Some(m) = md.as_mut() {
                m.ocf_version = Some(text.trim().to_string());
            }
        }
        (Some("resource-agent"), "shortdesc") => {
            if let Some(m) = md.as_mut() {
                m.shortdesc.get_or_insert_with(|| text.trim().to_string());
            }
        }
        (Some("parameter"), "shortdesc") => {
            if let Some(p) = cur_param.as_mut() {
                p.shortdesc.get_or_insert_with(|| text.trim().to_string());
            }
        }
        (Some("parameters"), "parameter") => {
            if let (Some(m), Some(p)) = (md.as_mut(), cur_param.take()) {
                m.parameters.push(p);
            }
        }
        _ => {}
    }
}

/// What [`validate_params`] found that is not fatal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParamWarning {
    /// The parameter.
    pub name: String,
    /// What is odd about it.
    pub message: String,
}

/// Checks `params` against the agent's meta-data before `start` (and
/// `validate-all`): a missing required parameter is an error naming it; an
/// unknown parameter, a deprecated one, or a value that does not fit its type is a
/// warning.
pub fn validate_params(
    agent: &str,
    md: &Metadata,
    params: &BTreeMap<String, String>,
) -> Result<Vec<ParamWarning>> {
    for p in &md.parameters {
        if p.required && !params.contains_key(&p.name) {
            return Err(Error::MissingParameter {
                agent: agent.to_string(),
                name: p.name.clone(),
            });
        }
    }
    let mut warnings = Vec::new();
    for (name, value) in params {
        let Some(spec) = md.parameter(name) else {
            warnings.push(ParamWarning {
                name: name.clone(),
                message: format!("{agent} has no parameter {name:?} (ignored by the agent)"),
            });
            continue;
        };
        if spec.deprecated {
            warnings.push(ParamWarning {
                name: name.clone(),
                message: format!("parameter {name:?} of {agent} is deprecated"),
            });
        }
        let bad = match &spec.content {
            ContentType::Integer => value.trim().parse::<i64>().is_err(),
            ContentType::Boolean => !matches!(
                value.trim().to_ascii_lowercase().as_str(),
                "1" | "0" | "true" | "false" | "yes" | "no" | "on" | "off" | "y" | "n"
            ),
            ContentType::Select(opts) => !opts.is_empty() && !opts.iter().any(|o| o == value),
            _ => false,
        };
        if bad {
            warnings.push(ParamWarning {
                name: name.clone(),
                message: format!(
                    "value {value:?} of {name:?} does not look like a {:?}",
                    spec.content
                ),
            });
        }
    }
    Ok(warnings)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OCF10: &str = r#"<?xml version="1.0"?>
<!DOCTYPE resource-agent SYSTEM "ra-api-1.dtd">
<resource-agent name="Dummy" version="1.0">
<version>1.0</version>
<longdesc lang="en">long &amp; winding</longdesc>
<shortdesc lang="en">Example stateless resource agent</shortdesc>
<parameters>
<parameter name="state" unique="1">
<longdesc lang="en">Location to store the resource state in.</longdesc>
<shortdesc lang="en">State file</shortdesc>
<content type="string" default="/run/Dummy.state" />
</parameter>
<parameter name="ip" required="1"><shortdesc lang="en">IP</shortdesc><content type="string"/></parameter>
</parameters>
<actions>
<action name="start"        timeout="20s" />
<action name="monitor"      timeout="20s" interval="10s" depth="0"/>
<action name="meta-data"    timeout="5" />
</actions>
</resource-agent>"#;

    const OCF11: &str = r#"<?xml version="1.0"?>
<resource-agent name="Stateful" version="1.1">
  <version>1.1</version>
  <shortdesc lang="en">Example stateful resource agent</shortdesc>
  <parameters>
    <parameter name="mode" reloadable="1">
      <deprecated><replaced-with name="role"/></deprecated>
      <longdesc lang="en">x</longdesc><shortdesc lang="en">Mode</shortdesc>
      <content type="select" default="a"><option value="a"/><option value="b"/></content>
    </parameter>
    <parameter name="n"><longdesc lang="en">n</longdesc><shortdesc lang="en">n</shortdesc>
      <content type="integer" default="3"/></parameter>
  </parameters>
  <actions>
    <action name="promote" timeout="10s"/>
    <action name="demote" timeout="10s"/>
    <action name="monitor" depth="0" timeout="20s" interval="10s" role="Promoted"/>
  </actions>
  <special tag="x"><anything/></special>
</resource-agent>"#;

    #[test]
    fn parses_ocf_1_0() {
        let m = Metadata::parse("Dummy", OCF10.as_bytes()).unwrap();
        assert_eq!(m.name, "Dummy");
        assert_eq!(m.ocf_version.as_deref(), Some("1.0"));
        assert_eq!(
            m.shortdesc.as_deref(),
            Some("Example stateless resource agent")
        );
        assert_eq!(m.parameters.len(), 2);
        let state = m.parameter("state").unwrap();
        assert!(state.unique && !state.required);
        assert_eq!(state.default.as_deref(), Some("/run/Dummy.state"));
        assert!(m.parameter("ip").unwrap().required);
        let mon = m.action("monitor").unwrap();
        assert_eq!(mon.interval, Some(Duration::from_secs(10)));
        assert_eq!(mon.depth, Some(0));
        assert_eq!(
            m.action("meta-data").unwrap().timeout,
            Some(Duration::from_secs(5))
        );
        assert!(!m.is_promotable());
    }

    #[test]
    fn parses_ocf_1_1() {
        let m = Metadata::parse("Stateful", OCF11.as_bytes()).unwrap();
        assert_eq!(m.ocf_version.as_deref(), Some("1.1"));
        let mode = m.parameter("mode").unwrap();
        assert!(mode.deprecated && mode.reloadable);
        assert_eq!(
            mode.content,
            ContentType::Select(vec!["a".into(), "b".into()])
        );
        assert_eq!(m.parameter("n").unwrap().content, ContentType::Integer);
        assert!(m.is_promotable());
        assert_eq!(
            m.action("monitor").unwrap().role.as_deref(),
            Some("Promoted")
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bad in [
            &b""[..],
            b"not xml at all",
            b"<html><body/></html>",
            b"<resource-agent name='x'><parameters>",
            b"<resource-agent><actions><action/></actions></resource-agent>",
            b"\xff\xfe\x00<",
            b"<resource-agent name='x'></wrong>",
        ] {
            assert!(Metadata::parse("x", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn validation_names_the_missing_parameter_and_warns_on_unknown() {
        let m = Metadata::parse("Dummy", OCF10.as_bytes()).unwrap();
        let mut p = BTreeMap::new();
        let e = validate_params("ocf:heartbeat:Dummy", &m, &p).unwrap_err();
        assert!(e.to_string().contains("\"ip\""), "{e}");
        p.insert("ip".to_string(), "1.2.3.4".to_string());
        p.insert("bogus".to_string(), "1".to_string());
        let w = validate_params("ocf:heartbeat:Dummy", &m, &p).unwrap();
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].name, "bogus");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

        /// Arbitrary bytes never panic the parser.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2048)) {
            let _ = Metadata::parse("fuzz", &bytes);
        }

        /// Mutations of a real document never panic the parser.
        #[test]
        fn mutated_documents_never_panic(
            cut in 0usize..OCF11.len(),
            at in 0usize..OCF11.len(),
            junk in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..16),
        ) {
            let mut doc = OCF11.as_bytes()[..cut.max(at)].to_vec();
            let at = at.min(doc.len());
            doc.splice(at..at, junk);
            let _ = Metadata::parse("fuzz", &doc);
        }

        /// Durations never panic or overflow.
        #[test]
        fn durations_never_panic(s in "\\PC{0,24}") {
            let _ = parse_duration(&s);
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("20s"), Some(Duration::from_secs(20)));
        assert_eq!(parse_duration("20"), Some(Duration::from_secs(20)));
        assert_eq!(parse_duration("1500ms"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("x"), None);
        assert_eq!(parse_duration("99999999999999999999h"), None);
    }
}
