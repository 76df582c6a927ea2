//! Every frame of the protocol has a JSON fixture; each must decode, re-encode to the same
//! JSON value, and decode again to the same frame.

use std::path::Path;

use moolai_protocol::{ClientFrame, Decoded, Hello, ServerFrame, decode_client_frame};
use serde_json::Value;

fn fixtures(kind: &str) -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(kind);
    let mut out: Vec<(String, String)> = std::fs::read_dir(&dir)
        .expect("fixtures dir")
        .map(|e| {
            let p = e.expect("entry").path();
            let name = p.file_name().expect("name").to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&p).expect("read fixture"))
        })
        .collect();
    out.sort();
    out
}

#[test]
fn client_frames_round_trip() {
    let all = fixtures("client");
    let mut types = std::collections::BTreeSet::new();
    for (name, text) in all {
        let Decoded::Frame(frame) = decode_client_frame(&text) else {
            panic!("{name} did not decode: {:?}", decode_client_frame(&text));
        };
        types.insert(frame.type_name());
        let encoded = serde_json::to_value(&frame).expect("encode");
        let original: Value = serde_json::from_str(&text).expect("json");
        assert_eq!(encoded, original, "{name} re-encodes differently");
        let again: ClientFrame = serde_json::from_value(encoded).expect("decode again");
        assert_eq!(again, frame, "{name}");
    }
    for t in moolai_protocol::KNOWN_CLIENT_TYPES {
        assert!(types.contains(t), "no client fixture for {t}");
    }
}

#[test]
fn server_frames_round_trip() {
    let mut types = std::collections::BTreeSet::new();
    for (name, text) in fixtures("server") {
        let frame: ServerFrame =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        let encoded: Value = serde_json::from_str(&frame.to_text()).expect("json");
        let original: Value = serde_json::from_str(&text).expect("json");
        assert_eq!(encoded, original, "{name} re-encodes differently");
        types.insert(original["type"].as_str().expect("type").to_owned());
    }
    for t in [
        "handshake_ack",
        "provisioning",
        "config_update",
        "stop_monitoring",
        "resume_monitoring",
        "status",
        "keepalive_ack",
        "controller_heartbeat",
        "message",
        "ack",
        "error",
    ] {
        assert!(types.contains(t), "no server fixture for {t}");
    }
}

#[test]
fn both_hello_dialects_normalize_to_the_same_fields() {
    let client = fixtures("client");
    let get = |n: &str| {
        client
            .iter()
            .find(|(name, _)| name == n)
            .expect(n)
            .1
            .clone()
    };
    let Decoded::Frame(f) = decode_client_frame(&get("handshake.json")) else {
        panic!()
    };
    let h = Hello::from_frame(f).expect("hello");
    assert_eq!(h.dialect, moolai_protocol::Dialect::Deployed);
    assert_eq!(h.orchestrator_id, "orch-001");
    assert_eq!(h.name.as_deref(), Some("Gateway 1"));
    assert_eq!(h.location.as_deref(), Some("eu-central"));
    assert_eq!(h.metadata["version"], "1.4.2");
    h.validate().expect("valid");

    let Decoded::Frame(f) = decode_client_frame(&get("register_with_token.json")) else {
        panic!()
    };
    let h = Hello::from_frame(f).expect("hello");
    assert_eq!(h.dialect, moolai_protocol::Dialect::Hld);
    assert_eq!(h.organization_id.as_deref(), Some("org-001"));
    assert_eq!(h.auth_token.as_deref(), Some("tok_abc"));

    // A token inside the metadata is taken out of it (metadata is stored and served).
    let Decoded::Frame(f) = decode_client_frame(
        r#"{"type":"handshake","data":{"orchestrator_id":"o1","metadata":{"version":"1","auth_token":"moo_enr_x"}}}"#,
    ) else {
        panic!()
    };
    let h = Hello::from_frame(f).expect("hello");
    assert_eq!(h.auth_token.as_deref(), Some("moo_enr_x"));
    assert!(!h.metadata.contains_key("auth_token"));
    assert_eq!(h.metadata["version"], "1");
}

#[test]
fn unknown_and_invalid_frames_are_told_apart() {
    assert_eq!(
        decode_client_frame(r#"{"type":"telemetry_v9","x":1}"#),
        Decoded::Unknown("telemetry_v9".into())
    );
    for bad in [
        "not json",
        "[1,2]",
        r#"{"no_type":1}"#,
        r#"{"type":"register"}"#,
        r#"{"type":"message","content":5}"#,
        "",
    ] {
        assert!(
            matches!(decode_client_frame(bad), Decoded::Invalid(_)),
            "{bad}"
        );
    }
}

#[test]
fn hello_validation_rejects_hostile_ids_and_shapes() {
    for text in [
        r#"{"type":"register","orchestrator_id":"a.b"}"#,
        r#"{"type":"register","orchestrator_id":"x","organization_id":"o>"}"#,
        r#"{"type":"register","orchestrator_id":"x","metadata":[1]}"#,
        r#"{"type":"handshake","data":{"orchestrator_id":"x","metadata":{"features":3}}}"#,
    ] {
        let Decoded::Frame(f) = decode_client_frame(text) else {
            panic!("{text}")
        };
        assert!(
            Hello::from_frame(f).expect("hello").validate().is_err(),
            "{text}"
        );
    }
    let Decoded::Frame(f) = decode_client_frame(r#"{"type":"keepalive"}"#) else {
        panic!()
    };
    assert!(Hello::from_frame(f).is_none());
}

#[test]
fn usage_and_messages_are_validated() {
    let Decoded::Frame(ClientFrame::Usage(u)) =
        decode_client_frame(r#"{"type":"usage","usage":{"requests":1,"cost":-1}}"#)
    else {
        panic!()
    };
    assert!(u.usage.validate().is_err());
    let Decoded::Frame(ClientFrame::Message(m)) =
        decode_client_frame(r#"{"type":"message","message_type":"spam","content":"x"}"#)
    else {
        panic!()
    };
    assert!(m.validate().is_err());
    let Decoded::Frame(ClientFrame::Message(m)) =
        decode_client_frame(r#"{"type":"message","message_type":"monitoring","content":"  "}"#)
    else {
        panic!()
    };
    assert!(m.validate().is_err());
}
