//! The bench's `users` and `events` entities, shared by `segkit-bench` and `segkit-ingest-bench`.

use segkit::{Attribute, DataType, Entity, Link};

/// The `users` profile of ../shared/bench, with `indexed` attributes (segkit stores a profile sorted by them,
/// then the key).
pub fn users_entity(indexed: &[String]) -> Entity {
    let mut e = Entity::profile("users", "user_id")
        .attribute(Attribute::new("user_id", DataType::Int64))
        .attribute(Attribute::new("email", DataType::String).pii())
        .attribute(Attribute::new("country", DataType::String))
        .attribute(Attribute::new("age", DataType::Int32))
        .attribute(Attribute::new("plan", DataType::String))
        .attribute(Attribute::new("ltv", DataType::Float64))
        .attribute(Attribute::new("signup_at", DataType::Timestamp))
        .attribute(Attribute::new("is_active", DataType::Bool))
        .attribute(Attribute::new("tags", DataType::List(Box::new(DataType::String))));
    for a in &mut e.attributes {
        a.indexed = indexed.contains(&a.name);
    }
    e
}

/// The `events` of ../shared/bench (`event_type` indexed), linked to `users`.
pub fn events_entity() -> Entity {
    Entity::event("events", "ts")
        .with_key("event_id")
        .attribute(Attribute::new("event_id", DataType::Int64))
        .attribute(Attribute::new("user_id", DataType::Int64))
        .attribute(Attribute::new("event_type", DataType::String).indexed())
        .attribute(Attribute::new("ts", DataType::Timestamp))
        .attribute(Attribute::new("amount", DataType::Float64))
        .link(Link::new("user_id", "users"))
}
