use super::Description;

#[test]
fn a_description_implies_a_system_prompt() {
    let mut d = Description {
        name: "corridor".into(),
        ..Description::default()
    };
    assert_eq!(d.prompt(), None);
    d.description = Some("A corridor.".into());
    assert_eq!(d.prompt().as_deref(), Some("A corridor."));
    d.action_semantics = Some("left and right move.".into());
    assert_eq!(
        d.prompt().as_deref(),
        Some("A corridor.\n\nActions: left and right move.")
    );
    d.system_prompt = Some("You walk a corridor.".into());
    assert_eq!(
        d.prompt().as_deref(),
        Some("You walk a corridor.\n\nActions: left and right move.")
    );
}
