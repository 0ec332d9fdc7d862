//! Bad and edge-case input for the placement solver: malformed or invalid CIBs give
//! errors naming the element; unsatisfiable configurations stop resources with a
//! reason; the output is deterministic.

use halyard_resources::placement;
use halyard_resources::Error;

fn cib(resources: &str, constraints: &str, status: &str) -> String {
    format!(
        r#"<cib have-quorum="1" dc-uuid="1"><configuration><crm_config><cluster_property_set id="o">
<nvpair id="o-stonith" name="stonith-enabled" value="false"/></cluster_property_set></crm_config>
<nodes><node id="1" uname="n1"/><node id="2" uname="n2"/></nodes>
<resources>{resources}</resources><constraints>{constraints}</constraints></configuration>
<status>
<node_state id="1" uname="n1" in_ccm="true" crmd="online" join="member" expected="member">{status}</node_state>
<node_state id="2" uname="n2" in_ccm="true" crmd="online" join="member" expected="member"/>
</status></cib>"#
    )
}

const TWO: &str = r#"<primitive id="a" class="ocf" provider="pacemaker" type="Dummy"/>
<primitive id="b" class="ocf" provider="pacemaker" type="Dummy"/>"#;

fn invalid_element(text: &str) -> String {
    match placement::read_cib(text, None) {
        Err(Error::CibInvalid { element, .. }) => element,
        other => panic!("expected CibInvalid, got {other:?}"),
    }
}

#[test]
fn malformed_xml_is_an_error() {
    let r = placement::read_cib("<cib><configuration>", None);
    assert!(matches!(r, Err(Error::CibXml { .. })), "{r:?}");
    let r = placement::read_cib("<cib><a></b></cib>", None);
    assert!(matches!(r, Err(Error::CibXml { .. })), "{r:?}");
}

#[test]
fn unknown_resource_in_constraint_names_the_constraint() {
    let t = cib(
        TWO,
        r#"<rsc_location id="l1" rsc="nope" node="n1" score="10"/>"#,
        "",
    );
    assert_eq!(invalid_element(&t), r#"<rsc_location id="l1">"#);
    let t = cib(
        TWO,
        r#"<rsc_colocation id="c1" rsc="a" with-rsc="zz" score="10"/>"#,
        "",
    );
    assert_eq!(invalid_element(&t), r#"<rsc_colocation id="c1">"#);
    let t = cib(TWO, r#"<rsc_order id="o1" first="zz" then="a"/>"#, "");
    assert_eq!(invalid_element(&t), r#"<rsc_order id="o1">"#);
}

#[test]
fn duplicate_id_names_both_elements() {
    // A constraint sharing its id with an nvpair: Pacemaker's schema rejects it.
    let t = cib(TWO, r#"<rsc_order id="o-stonith" first="a" then="b"/>"#, "");
    let e = placement::read_cib(&t, None).unwrap_err();
    let msg = e.to_string();
    assert!(
        matches!(&e, Error::CibInvalid { element, .. } if element == r#"<rsc_order id="o-stonith">"#),
        "{e:?}"
    );
    assert!(msg.contains(r#"<nvpair id="o-stonith">"#), "{msg}");
    // Two resources with one id.
    let t = cib(
        r#"<primitive id="a" class="ocf" provider="pacemaker" type="Dummy"/>
<group id="g"><primitive id="a" class="ocf" provider="pacemaker" type="Dummy"/></group>"#,
        "",
        "",
    );
    assert_eq!(invalid_element(&t), r#"<primitive id="a">"#);
    // References are not definitions: a resource set naming a resource, a node
    // whose id equals its name.
    let t = cib(
        TWO,
        r#"<rsc_order id="o1"><resource_set id="s1"><resource_ref id="a"/><resource_ref id="b"/></resource_set></rsc_order>"#,
        "",
    );
    placement::read_cib(&t, None).unwrap();
}

#[test]
fn bad_score_names_the_constraint() {
    let t = cib(
        TWO,
        r#"<rsc_location id="l2" rsc="a" node="n1" score="lots"/>"#,
        "",
    );
    let e = placement::read_cib(&t, None).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("l2") && msg.contains("lots"), "{msg}");
}

#[test]
fn mandatory_colocation_cycle_is_rejected() {
    let t = cib(
        TWO,
        r#"<rsc_colocation id="c1" rsc="a" with-rsc="b" score="INFINITY"/>
           <rsc_colocation id="c2" rsc="b" with-rsc="a" score="INFINITY"/>"#,
        "",
    );
    let e = invalid_element(&t);
    assert!(e.contains("rsc_colocation"), "{e}");
}

#[test]
fn unsatisfiable_stops_with_a_reason() {
    let t = cib(
        TWO,
        r#"<rsc_location id="l1" rsc="a" node="n1" score="-INFINITY"/>
           <rsc_location id="l2" rsc="a" node="n2" score="-INFINITY"/>"#,
        "",
    );
    let c = placement::read_cib(&t, None).unwrap();
    let out = placement::schedule(&c);
    assert!(out.placement_tsv().contains("a\tStopped\t-\t-"));
    let why = out.explain(&c, "a").unwrap();
    assert!(why.contains("reason:"), "{why}");
    assert!(why.contains("l1") && why.contains("l2"), "{why}");
}

#[test]
fn stickiness_keeps_a_running_resource_and_output_is_deterministic() {
    let running = r#"<lrm id="1"><lrm_resources><lrm_resource id="b" class="ocf" provider="pacemaker" type="Dummy">
<lrm_rsc_op id="b_last_0" operation="start" call-id="1" rc-code="0" op-status="0" interval="0" transition-key="1:0:0:x"/>
</lrm_resource></lrm_resources></lrm>"#;
    let t = cib(TWO, r#"<rsc_location id="l1" rsc="b" node="n2" score="50"/>"#, running)
        .replace("<resources>", "<rsc_defaults><meta_attributes id=\"d\"><nvpair id=\"d1\" name=\"resource-stickiness\" value=\"100\"/></meta_attributes></rsc_defaults><resources>");
    let c = placement::read_cib(&t, None).unwrap();
    let a = placement::schedule(&c).placement_tsv();
    let b = placement::schedule(&c).placement_tsv();
    assert_eq!(a, b);
    assert!(a.contains("b\tStarted\tn1\t-"), "{a}");
    // With the default strategy resources are assigned in configuration order:
    // a first, to the first node by name (both are empty then).
    assert!(a.contains("a\tStarted\tn1\t-"), "{a}");
}

#[test]
fn toml_configuration_round_trips() {
    let running = r#"<lrm id="1"><lrm_resources><lrm_resource id="b" class="ocf" provider="pacemaker" type="Dummy">
<lrm_rsc_op id="b_last_0" operation="start" call-id="1" rc-code="0" op-status="0" interval="0" transition-key="1:0:0:x"/>
</lrm_resource></lrm_resources></lrm>"#;
    let res = format!(
        "{TWO}<clone id=\"c\"><primitive id=\"p\" class=\"ocf\" provider=\"pacemaker\" type=\"Stateful\"/></clone>"
    );
    let t = cib(
        &res,
        r#"<rsc_location id="l1" rsc="b" node="n2" score="50"/><rsc_colocation id="c1" rsc="a" with-rsc="b" score="-INFINITY"/>"#,
        running,
    );
    let c = placement::read_cib(&t, None).unwrap();
    let text = placement::to_toml(&c).unwrap();
    let back = placement::read_toml(&text).unwrap();
    assert_eq!(
        placement::schedule(&c).placement_tsv(),
        placement::schedule(&back).placement_tsv()
    );
    // Out-of-range indices are rejected, not a panic.
    let broken = text.replacen("running_on = [0]", "running_on = [7]", 1);
    assert_ne!(broken, text, "the fixture should mention running_on = [0]");
    assert!(placement::read_toml(&broken).is_err());
    assert!(placement::read_toml("nonsense = [").is_err());
}
