//! Definition switches: stop and start hold across nodes and restarts.

use super::Ctx;

/// A definition's switch is recorded, replaced, and listed by name.
pub(crate) async fn definition_switches_are_kept_and_replaced(Ctx { store, .. }: Ctx) {
    assert!(store
        .definition_switch_list()
        .await
        .expect("list")
        .is_empty());
    for (name, stopped) in [("tail", true), ("backup", false), ("tail", false)] {
        store
            .definition_switch_put(name.into(), stopped)
            .await
            .expect("put");
    }
    assert_eq!(
        store.definition_switch_list().await.expect("list"),
        vec![("backup".to_string(), false), ("tail".to_string(), false)]
    );
    store
        .definition_switch_put("backup".into(), true)
        .await
        .expect("put");
    assert_eq!(
        store.definition_switch_list().await.expect("list"),
        vec![("backup".to_string(), true), ("tail".to_string(), false)]
    );
}
