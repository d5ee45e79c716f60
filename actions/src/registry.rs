//! [`registry()`]: every compiled-in action family, by config `type`.

use segkit::action::ActionRegistry;

/// The config of a `jsonl` action.
#[cfg(feature = "jsonl")]
#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct JsonlConfig {
    #[allow(dead_code)]
    r#type: String,
    /// The file each delivery is appended to, one JSON line per delivery.
    path: String,
}

/// An [`ActionRegistry`] with every built-in action type compiled into this build (`jsonl`, `smtp`,
/// `webhook`, `wecom`, `dingtalk`, `feishu`, `sms`, as their features allow). Register third-party types on
/// the returned registry.
///
/// ```
/// use segkit::action::ActionFactory;
/// let registry = segkit_actions::registry();
/// let action = registry.build(&serde_json::json!({"type": "jsonl", "path": "out.jsonl"})).unwrap();
/// assert_eq!(action.kind(), "jsonl");
/// let e = registry.build(&serde_json::json!({"type": "jsonl", "path": "x", "paht": "y"})).unwrap_err();
/// assert!(e.to_string().contains("unknown field `paht`"), "{e}");
/// ```
pub fn registry() -> ActionRegistry {
    #[allow(unused_mut)]
    let mut registry = ActionRegistry::new();
    #[cfg(feature = "jsonl")]
    registry.register("jsonl", |config| {
        let c: JsonlConfig = segkit::action::parse_config(config)?;
        if c.path.trim().is_empty() {
            return Err(crate::common::definition("action.path", "must not be empty"));
        }
        Ok(std::sync::Arc::new(crate::JsonlFileAction::new(c.path)))
    });
    #[cfg(feature = "smtp")]
    registry.register("smtp", |c| Ok(std::sync::Arc::new(crate::SmtpAction::from_config(c)?)));
    #[cfg(feature = "webhook")]
    registry.register("webhook", |c| Ok(std::sync::Arc::new(crate::WebhookAction::from_config(c)?)));
    #[cfg(feature = "wecom")]
    registry.register("wecom", |c| Ok(std::sync::Arc::new(crate::WeComAction::from_config(c)?)));
    #[cfg(feature = "dingtalk")]
    registry.register("dingtalk", |c| Ok(std::sync::Arc::new(crate::DingTalkAction::from_config(c)?)));
    #[cfg(feature = "feishu")]
    registry.register("feishu", |c| Ok(std::sync::Arc::new(crate::FeishuAction::from_config(c)?)));
    #[cfg(feature = "sms")]
    registry.register("sms", |c| Ok(std::sync::Arc::new(crate::SmsAction::from_config(c)?)));
    registry
}

/// The JSON Schema of a workflow step's action config for the actions of [`registry()`] (per cargo feature):
/// `oneOf` one schema per action type and an open alternative for types an application registers itself. Secret
/// fields are `env:NAME` references. Used for the project file's schema and the REST API's OpenAPI document.
// Each push is behind its own cargo feature, so the vector cannot be one `vec![…]`.
#[allow(clippy::vec_init_then_push)]
pub fn config_schema() -> serde_json::Value {
    #[allow(unused_mut)]
    let mut variants: Vec<serde_json::Value> = vec![];
    #[cfg(feature = "jsonl")]
    variants.push(segkit::spec::config_schema::variant::<JsonlConfig>(&["jsonl"]));
    #[cfg(feature = "smtp")]
    variants.push(crate::smtp::config_schema_variant());
    #[cfg(feature = "webhook")]
    variants.push(crate::webhook::config_schema_variant());
    #[cfg(feature = "wecom")]
    variants.push(crate::wecom::config_schema_variant());
    #[cfg(feature = "dingtalk")]
    variants.push(crate::dingtalk::config_schema_variant());
    #[cfg(feature = "feishu")]
    variants.push(crate::feishu::config_schema_variant());
    #[cfg(feature = "sms")]
    variants.push(crate::sms::config_schema_variant());
    segkit::spec::config_schema::one_of(variants, "action")
}
