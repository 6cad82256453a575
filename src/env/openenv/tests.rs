use super::*;

fn config(spec: &str) -> OpenEnvConfig {
    OpenEnvConfig::parse(spec, 1000, 0).unwrap()
}

#[test]
fn specs_parse_with_options_and_refuse_what_cannot_work() {
    let c = config("ws://127.0.0.1:8000/?action=command&sessions=4&text=prompt");
    assert_eq!(c.url, "ws://127.0.0.1:8000");
    assert_eq!(c.action_field.as_deref(), Some("command"));
    assert_eq!(c.text_field.as_deref(), Some("prompt"));
    assert_eq!(c.sessions, 4);
    assert_eq!(c.http_base(), "http://127.0.0.1:8000");
    // HTTP has one session whatever is asked.
    assert_eq!(config("http://h:1?sessions=4").sessions, 1);
    for bad in [
        "ftp://h:1",
        "wss://h:1",
        "http://h:1?colour=red",
        "ws://h:1?sessions=x",
        "nonsense",
    ] {
        let e = OpenEnvConfig::parse(bad, 1000, 0).unwrap_err().to_string();
        assert!(e.contains("--env openenv:"), "{bad}: {e}");
    }
}

#[test]
fn the_mapping_is_read_from_the_schema_with_defaults_and_options() {
    let schema = json!({
        "action": {"properties": {"metadata": {}, "command": {"type": "string"}}, "required": ["command"]},
        "observation": {"properties": {
            "done": {"type": "boolean"}, "reward": {}, "metadata": {},
            "text": {"type": "string"}, "legal_actions": {"type": "array"}, "success": {"type": "boolean"}
        }},
        "state": {}
    });
    let m = Mapping::from_schema(&schema, &config("http://h:1"), "x").unwrap();
    assert_eq!(m.action, "command");
    assert_eq!(m.text.as_deref(), Some("text"));
    assert_eq!(m.legal.as_deref(), Some("legal_actions"));
    assert_eq!(m.success.as_deref(), Some("success"));
    assert_eq!(m.actions, ActionSpace::FreeText);
    // An integer action with bounds is a choice; two action fields need ?action=.
    let schema = json!({
        "action": {"properties": {"metadata": {}, "a": {"type": "integer", "minimum": 0, "maximum": 3}, "b": {"type": "string"}}},
        "observation": {"properties": {"grid": {"type": "string"}}},
    });
    let e = Mapping::from_schema(&schema, &config("http://h:1"), "x").unwrap_err();
    assert!(e.to_string().contains("?action=FIELD"), "{e}");
    let m = Mapping::from_schema(&schema, &config("http://h:1?action=a"), "x").unwrap();
    assert_eq!(m.actions, ActionSpace::choice(&["0", "1", "2", "3"]));
    assert!(m.action_is_integer);
    assert_eq!(m.text.as_deref(), Some("grid"), "the only string field");
    let e =
        Mapping::from_schema(&schema, &config("http://h:1?action=a&legal=moves"), "x").unwrap_err();
    assert!(e.to_string().contains("\"moves\""), "{e}");
    let e = Mapping::from_schema(&json!({"detail": "Not Found"}), &config("http://h:1"), "x")
        .unwrap_err();
    assert!(e.to_string().contains("OpenEnv"), "{e}");
}
