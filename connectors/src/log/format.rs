//! Line formats: a user regex with named groups, the presets, and the normalisation of timestamps.

use chrono::{DateTime, Datelike, NaiveDateTime, SecondsFormat, Utc};
use regex::{Regex, RegexBuilder};
use serde_json::Value;

use segkit::limits::MAX_REGEX_PROGRAM_BYTES;
use segkit::Result;

use crate::file::text::value_text;

/// Longest user pattern, in bytes.
pub const MAX_PATTERN_BYTES: usize = 8 * 1024;

/// nginx's `combined` log format.
const NGINX: &str = r#"^(?P<remote_addr>\S+) \S+ (?P<remote_user>\S+) \[(?P<time_local>[^\]]+)\] "(?P<request>(?P<method>[A-Z]+) (?P<path>\S+) (?P<protocol>[^"\s]+)|[^"]*)" (?P<status>\d{3}) (?P<body_bytes_sent>\d+|-) "(?P<http_referer>[^"]*)" "(?P<http_user_agent>[^"]*)"\s*$"#;
/// Apache's `combined` log format (`%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-agent}i"`).
const APACHE: &str = r#"^(?P<host>\S+) (?P<ident>\S+) (?P<user>\S+) \[(?P<time>[^\]]+)\] "(?P<request>(?P<method>[A-Z]+) (?P<path>\S+) (?P<protocol>[^"\s]+)|[^"]*)" (?P<status>\d{3}) (?P<bytes>\d+|-) "(?P<referer>[^"]*)" "(?P<user_agent>[^"]*)"\s*$"#;
/// BSD syslog (RFC 3164): `<34>Oct 11 22:14:15 mymachine su[123]: message`.
const RFC3164: &str = r"^(?:<(?P<pri>\d{1,3})>)?(?P<timestamp>[A-Z][a-z]{2} [ 0-3]\d \d{2}:\d{2}:\d{2}) (?P<hostname>\S+) (?P<app_name>[^:\[\s]+)(?:\[(?P<procid>[^\]\s]+)\])?: ?(?P<message>.*)$";
/// Syslog (RFC 5424): `<165>1 2003-10-11T22:14:15.003Z host app 1234 ID47 [sd@1 a="b"] message`.
const RFC5424: &str = r#"^<(?P<pri>\d{1,3})>(?P<version>\d{1,2}) (?P<timestamp>\S+) (?P<hostname>\S+) (?P<app_name>\S+) (?P<procid>\S+) (?P<msgid>\S+) (?P<structured_data>-|(?:\[(?:[^\]\\"]|\\.|"(?:[^"\\]|\\.)*")*\])+)(?: (?P<message>.*))?$"#;

/// The nginx / Apache time format (`10/Oct/2000:13:55:36 -0700`).
const CLF_TIME: &str = "%d/%b/%Y:%H:%M:%S %z";

/// A line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    /// A user regex.
    Regex,
    /// nginx combined.
    Nginx,
    /// Apache combined.
    Apache,
    /// One JSON object per line.
    Json,
    /// Syslog RFC 3164.
    Rfc3164,
    /// Syslog RFC 5424.
    Rfc5424,
}

impl Preset {
    pub(crate) fn parse(name: &str) -> Option<Preset> {
        Some(match name.to_ascii_lowercase().replace('-', "_").as_str() {
            "regex" => Preset::Regex,
            "nginx" | "nginx_combined" => Preset::Nginx,
            "apache" | "apache_combined" | "combined" => Preset::Apache,
            "json" | "jsonl" | "ndjson" | "json_lines" => Preset::Json,
            "syslog" | "rfc3164" | "syslog_rfc3164" => Preset::Rfc3164,
            "rfc5424" | "syslog_rfc5424" => Preset::Rfc5424,
            _ => return None,
        })
    }

    /// The preset's time column and format.
    pub(crate) fn time(self) -> Option<(&'static str, &'static str)> {
        match self {
            Preset::Nginx => Some(("time_local", CLF_TIME)),
            Preset::Apache => Some(("time", CLF_TIME)),
            Preset::Rfc3164 => Some(("timestamp", "%b %e %H:%M:%S")),
            Preset::Rfc5424 => Some(("timestamp", "rfc3339")),
            Preset::Regex | Preset::Json => None,
        }
    }

    /// Values read as null: `-` for the presets (their "no value").
    pub(crate) fn null_values(self) -> Vec<String> {
        match self {
            Preset::Regex | Preset::Json => vec![],
            _ => vec!["-".to_string()],
        }
    }
}

/// A timestamp format: `rfc3339` or a chrono strftime format (with or without a UTC offset; without one the
/// time is UTC; without a year, the most recent year that does not put it more than a day in the future).
#[derive(Debug, Clone)]
pub(crate) struct TimeFormat(pub(crate) String);

impl TimeFormat {
    /// `text` as RFC 3339 in UTC (`2000-10-10T20:55:36Z`), or why not.
    pub(crate) fn normalize(&self, text: &str, now: DateTime<Utc>) -> std::result::Result<String, String> {
        let t = text.trim();
        let fail = || format!("`{}` is not a time in the format `{}`", clip(t, 64), self.0);
        let utc = if self.0.eq_ignore_ascii_case("rfc3339") {
            DateTime::parse_from_rfc3339(t).map_err(|_| fail())?.with_timezone(&Utc)
        } else if !self.0.contains("%Y") && !self.0.contains("%y") && !self.0.contains("%G") && !self.0.contains("%s") {
            let fmt = format!("%Y {}", self.0);
            let at = |year: i32| NaiveDateTime::parse_from_str(&format!("{year} {t}"), &fmt).map(|n| n.and_utc());
            let this = at(now.year()).map_err(|_| fail())?;
            if this > now + chrono::Duration::days(1) {
                at(now.year() - 1).map_err(|_| fail())?
            } else {
                this
            }
        } else {
            match DateTime::parse_from_str(t, &self.0) {
                Ok(d) => d.with_timezone(&Utc),
                Err(_) => NaiveDateTime::parse_from_str(t, &self.0).map_err(|_| fail())?.and_utc(),
            }
        };
        Ok(utc.to_rfc3339_opts(SecondsFormat::AutoSi, true))
    }
}

/// The first `n` characters of `s` (for messages).
pub(crate) fn clip(s: &str, n: usize) -> String {
    match s.char_indices().nth(n) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// Parses lines into values of the format's columns.
#[derive(Debug)]
pub(crate) enum LineParser {
    /// Named groups of a regex: (column, group index).
    Regex { re: Regex, groups: Vec<usize>, label: String },
    /// Fields of a JSON object.
    Json { fields: Vec<String> },
}

impl LineParser {
    /// The parser for `preset` (`pattern` for [`Preset::Regex`], `fields` for [`Preset::Json`]) and its columns.
    pub(crate) fn new(
        preset: Preset,
        pattern: Option<&str>,
        fields: Option<&[String]>,
    ) -> Result<(LineParser, Vec<String>)> {
        let (pattern, label) = match preset {
            Preset::Json => {
                let fields = fields.filter(|f| !f.is_empty()).ok_or_else(|| {
                    super::definition("source.fields", "the json format needs `fields`: the keys to read as columns")
                })?;
                return Ok((LineParser::Json { fields: fields.to_vec() }, fields.to_vec()));
            }
            Preset::Regex => {
                let p = pattern.ok_or_else(|| {
                    super::definition("source.pattern", "the regex format needs a `pattern` with named groups")
                })?;
                (p, "the pattern")
            }
            Preset::Nginx => (NGINX, "the nginx combined format"),
            Preset::Apache => (APACHE, "the Apache combined format"),
            Preset::Rfc3164 => (RFC3164, "the syslog RFC 3164 format"),
            Preset::Rfc5424 => (RFC5424, "the syslog RFC 5424 format"),
        };
        if pattern.len() > MAX_PATTERN_BYTES {
            return Err(super::definition(
                "source.pattern",
                format!("the pattern is {} bytes, more than the {MAX_PATTERN_BYTES} allowed", pattern.len()),
            ));
        }
        let re = RegexBuilder::new(pattern)
            .size_limit(MAX_REGEX_PROGRAM_BYTES)
            .dfa_size_limit(MAX_REGEX_PROGRAM_BYTES)
            .build()
            .map_err(|e| {
                let e = match e {
                    regex::Error::CompiledTooBig(n) => format!(
                        "the pattern compiles to more than {n} bytes (limit MAX_REGEX_PROGRAM_BYTES = \
                         {MAX_REGEX_PROGRAM_BYTES})"
                    ),
                    other => format!("invalid regex: {other}"),
                };
                super::definition("source.pattern", e)
            })?;
        let mut columns = vec![];
        let mut groups = vec![];
        for (i, name) in re.capture_names().enumerate() {
            if let Some(name) = name {
                columns.push(name.to_string());
                groups.push(i);
            }
        }
        if columns.is_empty() {
            return Err(super::definition(
                "source.pattern",
                "the pattern has no named group (write `(?P<name>…)`, one per column)",
            ));
        }
        if matches!(preset, Preset::Rfc3164 | Preset::Rfc5424) {
            let at = columns.iter().position(|c| c == "pri").map_or(0, |i| i + 1);
            columns.insert(at, "severity".into());
            columns.insert(at, "facility".into());
        }
        Ok((LineParser::Regex { re, groups, label: label.to_string() }, columns))
    }

    /// Fills `out` (one slot per column) from `line`, or says why the line does not parse.
    pub(crate) fn parse(&self, line: &str, out: &mut Vec<Option<String>>) -> std::result::Result<(), String> {
        out.clear();
        match self {
            LineParser::Regex { re, groups, label } => {
                let caps = re.captures(line).ok_or_else(|| format!("does not match {label}"))?;
                for &g in groups {
                    out.push(caps.get(g).map(|m| m.as_str().to_string()));
                    if re.capture_names().nth(g).flatten() == Some("pri") {
                        let pri = caps.get(g).and_then(|m| m.as_str().parse::<u16>().ok());
                        if let Some(p) = pri.filter(|p| *p > 191) {
                            return Err(format!("priority {p} is out of range (0-191)"));
                        }
                        out.push(pri.map(|p| (p / 8).to_string()));
                        out.push(pri.map(|p| (p % 8).to_string()));
                    }
                }
                Ok(())
            }
            LineParser::Json { fields } => {
                let v: Value = serde_json::from_str(line).map_err(|e| format!("not valid JSON ({e})"))?;
                let Value::Object(o) = v else { return Err("not a JSON object".into()) };
                out.extend(fields.iter().map(|f| o.get(f).and_then(value_text)));
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-03-01T00:00:00Z").unwrap().with_timezone(&Utc)
    }

    #[test]
    fn times_normalize_to_utc() {
        let clf = TimeFormat(CLF_TIME.into());
        assert_eq!(clf.normalize("10/Oct/2000:13:55:36 -0700", now()).unwrap(), "2000-10-10T20:55:36Z");
        let e = clf.normalize("10/Oct/2000", now()).unwrap_err();
        assert_eq!(e, "`10/Oct/2000` is not a time in the format `%d/%b/%Y:%H:%M:%S %z`");
        let bsd = TimeFormat("%b %e %H:%M:%S".into());
        assert_eq!(bsd.normalize("Feb  5 22:14:15", now()).unwrap(), "2026-02-05T22:14:15Z");
        assert_eq!(bsd.normalize("Oct 11 22:14:15", now()).unwrap(), "2025-10-11T22:14:15Z", "last year's October");
        let naive = TimeFormat("%Y-%m-%d %H:%M:%S".into());
        assert_eq!(naive.normalize("2026-01-02 03:04:05", now()).unwrap(), "2026-01-02T03:04:05Z");
        let rfc = TimeFormat("rfc3339".into());
        assert_eq!(rfc.normalize("2003-10-11T22:14:15.003+02:00", now()).unwrap(), "2003-10-11T20:14:15.003Z");
    }

    #[test]
    fn syslog_lines_parse_with_facility_and_severity() {
        let (p, cols) = LineParser::new(Preset::Rfc5424, None, None).unwrap();
        let mut out = vec![];
        p.parse(r#"<165>1 2003-10-11T22:14:15.003Z mymachine evntslog - ID47 [exampleSDID@32473 iut="3" eventSource="Appli\]cation"] An application event"#, &mut out).unwrap();
        let get = |c: &str| out[cols.iter().position(|x| x == c).unwrap()].clone();
        assert_eq!((get("facility"), get("severity")), (Some("20".into()), Some("5".into())));
        assert_eq!(get("message").as_deref(), Some("An application event"));
        assert!(get("structured_data").unwrap().starts_with("[exampleSDID@32473"));
        assert_eq!(p.parse("<999>1 x y z - - -", &mut out).unwrap_err(), "priority 999 is out of range (0-191)");
        let (p, cols) = LineParser::new(Preset::Rfc3164, None, None).unwrap();
        p.parse("<34>Oct 11 22:14:15 mymachine su[77]: 'su root' failed", &mut out).unwrap();
        let get = |c: &str| out[cols.iter().position(|x| x == c).unwrap()].clone();
        assert_eq!((get("app_name").as_deref(), get("procid").as_deref()), (Some("su"), Some("77")));
        assert_eq!((get("facility").as_deref(), get("severity").as_deref()), (Some("4"), Some("2")));
        assert_eq!(p.parse("garbage", &mut out).unwrap_err(), "does not match the syslog RFC 3164 format");
    }

    #[test]
    fn user_patterns_are_bounded_and_need_named_groups() {
        let e = LineParser::new(Preset::Regex, Some("(a|b)+"), None).unwrap_err();
        assert!(e.to_string().contains("source.pattern") && e.to_string().contains("no named group"), "{e}");
        let e = LineParser::new(Preset::Regex, Some(r"(?P<x>\w{1000}){1000}"), None).unwrap_err();
        assert!(e.to_string().contains("MAX_REGEX_PROGRAM_BYTES"), "{e}");
        let e = LineParser::new(Preset::Regex, Some("(?P<x>"), None).unwrap_err();
        assert!(e.to_string().contains("invalid regex"), "{e}");
        let e = LineParser::new(Preset::Json, None, None).unwrap_err();
        assert!(e.to_string().contains("source.fields"), "{e}");
    }
}
