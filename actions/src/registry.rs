//! [`registry()`]: every compiled-in action family, by config `type`.

use segkit::action::ActionRegistry;

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
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Config {
            #[allow(dead_code)]
            r#type: String,
            path: String,
        }
        let c: Config = segkit::action::parse_config(config)?;
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
