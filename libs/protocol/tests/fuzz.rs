//! Property-based fuzzing of what an orchestrator controls: the frame decoder and the hello
//! validation. Whatever the bytes, decoding and validating never panic, unknown types are
//! reported bounded, and whatever decodes re-encodes to something that decodes the same.
//!
//! Bounded for CI by the case count (`PROPTEST_CASES` raises it for a longer local run);
//! failures proptest finds are saved next to this file and replayed first, and each one
//! fixed becomes a plain test at the end.

use std::path::Path;

use moolai_protocol::{Decoded, Hello, KNOWN_CLIENT_TYPES, decode_client_frame, validate_id};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(2_000);
    ProptestConfig {
        cases,
        // Next to this file: tests/fuzz.proptest-regressions, replayed before new cases.
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::WithSource("proptest-regressions"),
        )),
        ..ProptestConfig::default()
    }
}

/// Any JSON value, a few levels deep, with strings that include control characters,
/// quotes, SQL and markup.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,40}".prop_map(Value::String),
        prop_oneof![
            Just("'; DROP TABLE orchestrator_instances; --"),
            Just("<script>alert(1)</script>"),
            Just("\u{0000}\u{202e}\u{feff}"),
            Just("../../etc/passwd"),
        ]
        .prop_map(|s| Value::String(s.to_owned())),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::btree_map(".{0,12}", inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// An object whose `type` is a real frame type (or close to one) and whose fields are the
/// protocol's field names with arbitrary values: the shapes a buggy or hostile client sends.
fn frame_like() -> impl Strategy<Value = Value> {
    const FIELDS: [&str; 16] = [
        "orchestrator_id",
        "organization_id",
        "metadata",
        "name",
        "location",
        "features",
        "auth_token",
        "timestamp",
        "snapshot",
        "message_type",
        "content",
        "usage",
        "session_config",
        "id",
        "version",
        "hostname",
    ];
    let kind = prop_oneof![
        prop::sample::select(KNOWN_CLIENT_TYPES.to_vec()).prop_map(str::to_owned),
        ".{0,80}",
    ];
    (
        kind,
        prop::collection::vec((prop::sample::select(FIELDS.to_vec()), any_json()), 0..8),
    )
        .prop_map(|(kind, fields)| {
            let mut object = Map::new();
            object.insert("type".into(), Value::String(kind));
            for (k, v) in fields {
                object.insert(k.to_owned(), v);
            }
            Value::Object(object)
        })
}

fn fixture_texts() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/client");
    let mut texts: Vec<String> = std::fs::read_dir(&dir)
        .expect("fixtures dir")
        .map(|e| std::fs::read_to_string(e.expect("entry").path()).expect("read"))
        .collect();
    texts.sort();
    texts
}

/// Decodes, checks the outcome's invariants, and for a frame, validates it as a hello where
/// it is one and checks that it re-encodes to an equal frame.
fn check(text: &str) -> Result<(), TestCaseError> {
    match decode_client_frame(text) {
        Decoded::Frame(frame) => {
            prop_assert!(KNOWN_CLIENT_TYPES.contains(&frame.type_name()));
            let encoded = serde_json::to_string(&frame).expect("a decoded frame encodes");
            match decode_client_frame(&encoded) {
                Decoded::Frame(again) => prop_assert_eq!(&again, &frame),
                other => prop_assert!(false, "re-encoded frame did not decode: {other:?}"),
            }
            if let Some(hello) = Hello::from_frame(frame)
                && hello.validate().is_ok()
            {
                // A hello that passes validation carries an id the rest of the system accepts.
                prop_assert!(validate_id("orchestrator_id", &hello.orchestrator_id).is_ok());
            }
        }
        Decoded::Unknown(kind) => {
            prop_assert!(
                kind.chars().count() <= 64,
                "unbounded type name echoed back"
            );
            prop_assert!(!KNOWN_CLIENT_TYPES.contains(&kind.as_str()));
        }
        Decoded::Invalid(reason) => prop_assert!(!reason.is_empty()),
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_text_never_panics(text in ".{0,512}") {
        check(&text)?;
    }

    #[test]
    fn arbitrary_json_never_panics(value in any_json()) {
        check(&value.to_string())?;
    }

    #[test]
    fn frame_shaped_objects_decode_or_are_refused_cleanly(value in frame_like()) {
        check(&value.to_string())?;
    }

    #[test]
    fn mutated_fixtures_never_panic(
        pick in any::<prop::sample::Index>(),
        cuts in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
    ) {
        let texts = fixture_texts();
        let mut bytes = pick.get(&texts).clone().into_bytes();
        for (at, byte) in cuts {
            let i = at.index(bytes.len() + 1);
            match byte % 3 {
                0 => bytes.truncate(i),
                1 => bytes.insert(i.min(bytes.len()), byte),
                _ => if i < bytes.len() { bytes[i] = byte; },
            }
        }
        // The edge only decodes valid UTF-8 text frames; anything else is closed earlier.
        if let Ok(text) = String::from_utf8(bytes) {
            check(&text)?;
        }
    }
}

/// Found by `frame_shaped_objects_decode_or_are_refused_cleanly`: serde_json's default float
/// parser was off by one unit in the last place, so metadata numbers did not come back as
/// sent (fixed with its `float_roundtrip` feature).
#[test]
fn floats_in_metadata_round_trip_exactly() {
    let text = r#"{"type":"update_metadata","metadata":{"":{"":-1.961920096926424e-178}}}"#;
    let Decoded::Frame(frame) = decode_client_frame(text) else {
        panic!("did not decode");
    };
    let encoded = serde_json::to_string(&frame).expect("encode");
    assert_eq!(decode_client_frame(&encoded), Decoded::Frame(frame));
    assert!(encoded.contains("-1.961920096926424e-178"), "{encoded}");
}
