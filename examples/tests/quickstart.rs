//! Runs the README quickstart against its real receiver on 127.0.0.1 and checks the whole loop: one signed
//! webhook per customer entering `high_value`, with unique idempotency keys, and none again after the update
//! for the customers who were already in.

use std::collections::BTreeSet;

use segkit::workflow::Status;

/// The template's `({{ entity.plan }}, {{ entity.country }})` for a customer, from the sample data at the time
/// it entered.
fn plan_country(key: &str) -> &'static str {
    match key {
        "1001" => "(pro, CN)",
        "1002" => "(pro, US)",
        "1003" => "(enterprise, CN)",
        "1007" => "(pro, BR)",
        "1008" => "(enterprise, JP)",
        "1012" => "(pro, CN)",
        _ => "unexpected customer",
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_quickstart_sends_one_signed_webhook_per_entered_customer() {
    let tmp = tempfile::tempdir().unwrap();
    let rounds = segkit_examples::quickstart(&tmp.path().join("ws")).await.unwrap();
    assert_eq!(rounds.len(), 2);

    // The first evaluation: everyone in high_value entered; the update adds 1002 (ltv now 1890) and 1012 (new).
    let expected: [&[&str]; 2] = [&["1001", "1003", "1007", "1008"], &["1002", "1012"]];
    let mut all_keys = BTreeSet::new();
    for (round, want) in rounds.iter().zip(expected) {
        let entered: BTreeSet<&str> = round.entered.iter().map(String::as_str).collect();
        assert_eq!(entered, want.iter().copied().collect(), "{round:?}");
        let mut got: Vec<&str> = round.received.iter().map(|r| r.entity_key.as_str()).collect();
        got.sort();
        assert_eq!(got, want.to_vec(), "exactly one webhook per entered customer: {round:?}");
        assert_eq!(round.ledger.len(), want.len(), "one ledger row per entered customer: {round:?}");
        for r in &round.received {
            assert!(r.signature_ok, "{r:?}");
            assert_eq!(
                r.text,
                format!("Welcome to high_value, customer {} ", r.entity_key) + plan_country(&r.entity_key)
            );
            let row = round.ledger.iter().find(|l| l.entity_key == r.entity_key).unwrap();
            assert_eq!(row.idempotency_key, r.idempotency_key, "{row:?}");
            assert_eq!(row.status, Status::Delivered, "{row:?}");
            assert!(all_keys.insert(r.idempotency_key.clone()), "idempotency key sent twice: {r:?}");
        }
    }
}
