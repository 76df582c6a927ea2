//! The committed JSON schemas of the public NATS events must match the types. Regenerate with
//! `UPDATE_SCHEMAS=1 cargo test -p moolai-bus --test schemas`.

use std::path::Path;

#[test]
fn committed_schemas_match_the_event_types() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/schemas");
    let update = std::env::var_os("UPDATE_SCHEMAS").is_some();
    for (file, schema) in moolai_bus::events::public_schemas() {
        let path = dir.join(file);
        let text = serde_json::to_string_pretty(&schema).expect("schema json") + "\n";
        if update {
            std::fs::write(&path, &text).expect("write schema");
            continue;
        }
        let committed = std::fs::read_to_string(&path)
            .unwrap_or_else(|_| panic!("{} is missing; run with UPDATE_SCHEMAS=1", path.display()));
        assert_eq!(
            committed, text,
            "{file} is out of date; run with UPDATE_SCHEMAS=1"
        );
        let props = schema["properties"].as_object().expect("properties");
        assert!(
            props.contains_key("orchestrator_id") && props.contains_key("organization_id"),
            "{file}"
        );
    }
}
