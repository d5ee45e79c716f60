//! Action implementations for segkit workflows.
//!
//! An [`Action`] performs one [`Delivery`] and classifies the [`Outcome`]; [`registry()`] builds any
//! compiled-in family from its JSON config (tagged by `type`). Families are behind cargo features (all on by
//! default):
//!
//! - `jsonl`: [`JsonlFileAction`] appends each delivery as one JSON line to a local file.
//! - `smtp`: [`SmtpAction`], plain or HTML multipart mail over SMTP (STARTTLS, implicit TLS or none).
//! - `webhook`: [`WebhookAction`], a JSON HTTP request signed with HMAC-SHA256 (`X-Segkit-Signature`).
//! - `wecom`, `dingtalk`, `feishu`: [`WeComAction`], [`DingTalkAction`], [`FeishuAction`], chat robots.
//! - `sms`: [`SmsAction`] with an [`SmsProvider`]: a templated HTTP API or Aliyun `SendSms`.
//!
//! Secrets (passwords, keys, tokens) are given only as `env:NAME` references, are resolved when the action is
//! built and never appear in Debug output, outcomes or errors. Every network call has a bounded timeout.
//! See `docs/actions.md` for configs and receiver-side signature checks.

pub use segkit::action::{Action, Delivery, Outcome};

mod common;
mod registry;

pub use common::Secret;
pub use registry::{config_schema, registry};

#[cfg(feature = "http")]
mod http;
#[cfg(feature = "webhook")]
mod http1;

#[cfg(feature = "jsonl")]
mod jsonl;
#[cfg(feature = "jsonl")]
pub use jsonl::JsonlFileAction;

#[cfg(feature = "smtp")]
mod smtp;
#[cfg(feature = "smtp")]
pub use smtp::{message_id, SmtpAction, SmtpTls};

#[cfg(feature = "webhook")]
mod webhook;
#[cfg(feature = "webhook")]
pub use webhook::{signature as webhook_signature, WebhookAction, SIGNATURE_HEADER};

#[cfg(feature = "wecom")]
mod wecom;
#[cfg(feature = "wecom")]
pub use wecom::{WeComAction, WECOM_RATE_PER_SECOND};

#[cfg(feature = "dingtalk")]
mod dingtalk;
#[cfg(feature = "dingtalk")]
pub use dingtalk::{dingtalk_sign, DingTalkAction, DINGTALK_RATE_PER_SECOND};

#[cfg(feature = "feishu")]
mod feishu;
#[cfg(feature = "feishu")]
pub use feishu::{feishu_sign, FeishuAction, FEISHU_RATE_PER_SECOND};

#[cfg(feature = "sms")]
mod sms;
#[cfg(feature = "sms")]
pub use sms::{aliyun_percent_encode, aliyun_signature, normalize_phone, SmsAction, SmsProvider};
