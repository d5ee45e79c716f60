//! The OpenAPI document, checked by an independent validator (openapi-spec-validator from PyPI, in
//! `$SEGKIT_VENV` — scripts/test-all.sh installs it from scripts/requirements-services.txt — or
//! `/var/cache/segkit/venv`, `bindings/python/.venv`, or the system `python3`); the test fails with a clear
//! message when none has it.

use std::path::PathBuf;
use std::process::Command;

fn validator_python() -> PathBuf {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let mut candidates: Vec<PathBuf> =
        std::env::var_os("SEGKIT_VENV").map(|v| PathBuf::from(v).join("bin/python")).into_iter().collect();
    candidates.extend(
        ["/var/cache/segkit/venv/bin/python", &format!("{root}/bindings/python/.venv/bin/python"), "python3"]
            .map(PathBuf::from),
    );
    for py in candidates {
        let ok = Command::new(&py).args(["-c", "import openapi_spec_validator"]).output();
        if ok.is_ok_and(|o| o.status.success()) {
            return py;
        }
    }
    panic!(
        "no Python with openapi-spec-validator: pip install -r scripts/requirements-services.txt into a venv and \
         set SEGKIT_VENV to it"
    );
}

#[test]
fn the_openapi_document_passes_an_independent_validator() {
    let doc = segkit_server::api::openapi();
    let text = doc.to_pretty_json().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("openapi.json");
    std::fs::write(&path, &text).unwrap();
    let out = Command::new(validator_python())
        .args(["-c", "import json, sys; from openapi_spec_validator import validate; validate(json.load(open(sys.argv[1]))); print('valid')"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("valid"),
        "openapi-spec-validator: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // And a broken document is refused, so the check can fail.
    let broken = text.replacen("\"3.1.0\"", "\"9.9.9\"", 1);
    std::fs::write(&path, broken).unwrap();
    let out = Command::new(validator_python())
        .args([
            "-c",
            "import json, sys; from openapi_spec_validator import validate; validate(json.load(open(sys.argv[1])))",
        ])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success(), "a document claiming OpenAPI 9.9.9 must be refused");
}
