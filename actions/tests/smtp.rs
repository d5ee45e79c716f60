//! SMTP against a real aiosmtpd server on loopback, started by the test from the venv in `$SEGKIT_VENV`
//! (scripts/test-all.sh sets it) or `/var/cache/segkit/venv-actions` / `/var/cache/segkit/venv` /
//! `bindings/python/.venv`; the test fails with a clear message when none has aiosmtpd.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use segkit::action::ActionFactory;
use segkit_actions::{registry, Delivery, Outcome};
use serde_json::{json, Value};

fn python() -> PathBuf {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let mut candidates: Vec<PathBuf> = std::env::var_os("SEGKIT_VENV").map(PathBuf::from).into_iter().collect();
    candidates.extend(
        ["/var/cache/segkit/venv-actions", "/var/cache/segkit/venv", &format!("{root}/bindings/python/.venv")]
            .map(PathBuf::from),
    );
    for venv in &candidates {
        let py = venv.join("bin/python");
        if py.exists()
            && Command::new(&py).args(["-c", "import aiosmtpd"]).output().map(|o| o.status.success()).unwrap_or(false)
        {
            return py;
        }
    }
    panic!(
        "no venv with aiosmtpd among {candidates:?}: run scripts/test-all.sh, or pip install -r \
         scripts/requirements-services.txt into a venv and set SEGKIT_VENV to it"
    );
}

struct SmtpServer {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn start(tls: Option<(&Path, &Path, &str)>) -> SmtpServer {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/smtp_server.py");
    let mut cmd = Command::new(python());
    cmd.arg(script).arg(dir.path()).arg(port.to_string());
    if let Some((cert, key, mode)) = tls {
        cmd.arg(cert).arg(key).arg(mode);
    }
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().expect("start aiosmtpd");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "READY", "aiosmtpd did not start");
    SmtpServer { child, port, dir }
}

impl SmtpServer {
    /// The mail number `n` (from 1) as parsed by Python's email package, waiting briefly for it.
    fn mail(&self, n: usize) -> Value {
        let path = self.dir.path().join(format!("{n}.eml"));
        let deadline = Instant::now() + Duration::from_secs(10);
        while !path.exists() {
            assert!(Instant::now() < deadline, "mail {n} never arrived");
            std::thread::sleep(Duration::from_millis(20));
        }
        let envelope = std::fs::read_to_string(self.dir.path().join(format!("{n}.env"))).unwrap();
        let parse = r#"
import email, json, sys
from email import policy
m = email.message_from_binary_file(open(sys.argv[1], 'rb'), policy=policy.default)
parts = [{"type": p.get_content_type(), "content": p.get_content()} for p in m.walk() if not p.is_multipart()]
print(json.dumps({"type": m.get_content_type(), "subject": m["subject"], "from": m["from"], "to": m["to"],
    "reply_to": m["reply-to"], "message_id": m["message-id"], "parts": parts}))
"#;
        let out = Command::new(python()).args(["-c", parse]).arg(&path).output().unwrap();
        assert!(out.status.success(), "{out:?}");
        let mut v: Value = serde_json::from_slice(&out.stdout).unwrap();
        v["envelope"] = json!(envelope);
        v
    }

    fn count(&self) -> usize {
        std::fs::read_dir(self.dir.path())
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().extension() == Some("eml".as_ref()))
            .count()
    }
}

fn delivery(key: &str, email: &str, parts: &[(&str, &str)]) -> Delivery {
    let mut d = Delivery::new(format!("wf:1:0:{key}"), "welcome", "user", key);
    d.attributes = json!({"email": email, "work_email": "w@example.com"}).as_object().unwrap().clone();
    for (k, v) in parts {
        d.content.insert(k.to_string(), v.to_string());
    }
    d
}

fn action(port: u16, extra: Value) -> std::sync::Arc<dyn segkit_actions::Action> {
    let mut config = json!({"type": "smtp", "host": "127.0.0.1", "port": port, "tls": "none",
        "from": "Shop <shop@example.com>", "timeout_ms": 5000});
    for (k, v) in extra.as_object().unwrap() {
        config[k] = v.clone();
    }
    registry().build(&config).unwrap()
}

#[tokio::test]
async fn multipart_and_plain_mail_reach_a_real_server() {
    let server = start(None);
    let mail = action(server.port, json!({"reply_to": "help@example.com"}));
    assert_eq!(mail.parts(), Some(&["subject", "text", "html"][..]));
    let d = delivery(
        "42",
        "ada@example.com",
        &[("subject", "Welcome, Ada — 你好"), ("text", "Hello Ada\nplain"), ("html", "<p>Hello <b>Ada</b></p>")],
    );
    match mail.execute(&d).await {
        Outcome::Delivered { receipt: Some(r) } => assert!(r.starts_with("250 2.0.0 queued as q1"), "{r}"),
        o => panic!("{o:?}"),
    }
    let m = server.mail(1);
    assert_eq!(m["type"], "multipart/alternative");
    assert_eq!(m["subject"], "Welcome, Ada — 你好");
    assert_eq!(m["from"], "Shop <shop@example.com>");
    assert_eq!(m["to"], "ada@example.com");
    assert_eq!(m["reply_to"], "help@example.com");
    assert_eq!(m["message_id"], "<wf=3A1=3A0=3A42@segkit>");
    assert_eq!(m["parts"][0], json!({"type": "text/plain", "content": "Hello Ada\nplain"}));
    assert_eq!(m["parts"][1], json!({"type": "text/html", "content": "<p>Hello <b>Ada</b></p>"}));
    assert_eq!(m["envelope"], "shop@example.com\nada@example.com");

    // HTML only, recipient from another attribute.
    let html_only = action(server.port, json!({"to_attribute": "work_email"}));
    let d = delivery("43", "ignored@example.com", &[("subject", "S"), ("html", "<i>x</i>")]);
    assert!(matches!(html_only.execute(&d).await, Outcome::Delivered { .. }));
    let m = server.mail(2);
    assert_eq!(m["type"], "text/html");
    assert_eq!(m["to"], "w@example.com");
    assert_eq!(m["parts"].as_array().unwrap().len(), 1);
    // Text only.
    let d = delivery("44", "bob@example.com", &[("subject", "S"), ("text", "just text")]);
    assert!(matches!(mail.execute(&d).await, Outcome::Delivered { .. }));
    assert_eq!(server.mail(3)["type"], "text/plain");
}

#[tokio::test]
async fn smtp_replies_and_bad_input_are_classified() {
    let server = start(None);
    let mail = action(server.port, json!({}));
    let parts = [("subject", "S"), ("text", "t")];
    match mail.execute(&delivery("1", "reject@example.com", &parts)).await {
        Outcome::Permanent { reason } => assert!(reason.contains("550") && reason.contains("no such user"), "{reason}"),
        o => panic!("{o:?}"),
    }
    match mail.execute(&delivery("2", "later@example.com", &parts)).await {
        Outcome::Retryable { reason, retry_after: None } => {
            assert!(reason.contains("451") && reason.contains("try again later"), "{reason}")
        }
        o => panic!("{o:?}"),
    }
    for bad in ["not an address", "a@b@c", "x\r\nBcc: evil@example.com"] {
        match mail.execute(&delivery("3", bad, &parts)).await {
            Outcome::Permanent { reason } => {
                assert!(reason.starts_with("smtp: the `email` attribute is not a valid mail address"), "{reason}")
            }
            o => panic!("{bad:?}: {o:?}"),
        }
    }
    assert_eq!(
        mail.execute(&delivery("4", "a@example.com", &[("text", "t")])).await,
        Outcome::Permanent { reason: "smtp: the delivery has no `subject` part (check the step's template)".into() }
    );
    assert_eq!(
        mail.execute(&delivery("5", "a@example.com", &[("subject", "s")])).await,
        Outcome::Permanent {
            reason: "smtp: the delivery has no `text` or `html` part (check the step's template)".into()
        }
    );
    let mut no_addr = delivery("6", "a@example.com", &parts);
    no_addr.attributes.remove("email");
    assert_eq!(
        mail.execute(&no_addr).await,
        Outcome::Permanent { reason: "smtp: the entity has no `email` attribute to send to".into() }
    );
    assert_eq!(server.count(), 0);
    // A server that is not there: retryable.
    let gone = action(free_port(), json!({}));
    assert!(matches!(gone.execute(&delivery("7", "a@example.com", &parts)).await, Outcome::Retryable { .. }));
}

#[test]
fn smtp_config_errors() {
    let r = registry();
    let err = |c: Value| r.build(&c).unwrap_err().to_string();
    let e = err(json!({"type": "smtp", "host": "h", "from": "a@example.com", "username": "u", "password": "hunter2"}));
    assert!(e.starts_with("invalid definition of action.password:") && !e.contains("hunter2"), "{e}");
    let e = err(json!({"type": "smtp", "host": "h", "from": "not-an-address"}));
    assert!(e.starts_with("invalid definition of action.from: not a valid mail address"), "{e}");
    let e = err(json!({"type": "smtp", "host": "h", "from": "a@example.com", "tls": "ssl"}));
    assert!(e.starts_with("invalid definition of action.tls: unknown variant `ssl`"), "{e}");
    let e = err(json!({"type": "smtp", "host": "h", "from": "a@example.com", "username": "u"}));
    assert!(e.starts_with("invalid definition of action.password: `username` needs a `password`"), "{e}");
    std::env::set_var("SEGKIT_TEST_SMTP_PW", "pw-secret-1");
    let a = r
        .build(&json!({"type": "smtp", "host": "h", "from": "a@example.com", "username": "u", "password": "env:SEGKIT_TEST_SMTP_PW"}))
        .unwrap();
    assert!(!format!("{a:?}").contains("pw-secret-1"), "{a:?}");
}

/// A test CA and a server certificate for 127.0.0.1 signed by it, made with the `openssl` command.
fn certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("the `openssl` command is needed to make test certificates (apt-get install openssl)");
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    run(&[
        &["req", "-x509"][..],
        &ec,
        &[
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=segkit test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign",
        ],
    ]
    .concat());
    run(&[&["req"][..], &ec, &["-keyout", "leaf.key", "-out", "leaf.csr", "-subj", "/CN=127.0.0.1"]].concat());
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "leaf.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
    (dir.join("ca.pem"), dir.join("leaf.pem"), dir.join("leaf.key"))
}

#[tokio::test]
async fn starttls_and_implicit_tls_verify_the_server_certificate() {
    let certs = tempfile::tempdir().unwrap();
    let (ca, cert, key) = certificates(certs.path());
    let parts = [("subject", "Secure"), ("text", "over TLS")];
    for mode in ["starttls", "tls"] {
        let server = start(Some((&cert, &key, mode)));
        let trusted = action(server.port, json!({"tls": mode, "ca_file": ca.to_str().unwrap()}));
        match trusted.execute(&delivery("1", "ada@example.com", &parts)).await {
            Outcome::Delivered { receipt: Some(r) } => assert!(r.starts_with("250"), "{mode}: {r}"),
            o => panic!("{mode}: {o:?}"),
        }
        // A single-part body arrives with the SMTP line ending(s) the server keeps.
        assert_eq!(server.mail(1)["parts"][0]["content"].as_str().unwrap().trim_end(), "over TLS", "{mode}");
        // Without the private CA the certificate is not trusted: retryable (a TLS failure), nothing sent.
        let untrusted = action(server.port, json!({"tls": mode}));
        match untrusted.execute(&delivery("2", "ada@example.com", &parts)).await {
            Outcome::Retryable { reason, .. } => assert!(reason.starts_with("smtp 127.0.0.1:"), "{mode}: {reason}"),
            o => panic!("{mode}: {o:?}"),
        }
        assert_eq!(server.count(), 1, "{mode}");
    }
}
