//! `segkit serve --tls-cert --tls-key`: the API over HTTPS with a self-signed certificate made in the test, and
//! a client that trusts only that certificate.

mod common;

use segkit::CancellationToken;
use segkit_server::api::{self, ServerOptions};

#[tokio::test]
async fn the_api_is_served_over_tls_to_a_client_trusting_the_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let ws = common::workspace(dir.path()).await;
    let key = ws.create_api_key("ada", segkit::auth::Role::Admin, "test").unwrap().secret;
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let (cert_pem, key_pem) = (cert.cert.pem(), cert.signing_key.serialize_pem());
    std::fs::write(dir.path().join("cert.pem"), &cert_pem).unwrap();
    std::fs::write(dir.path().join("key.pem"), &key_pem).unwrap();
    let config = segkit_server::tls::server_config(&dir.path().join("cert.pem"), &dir.path().join("key.pem")).unwrap();
    let app = api::app(ws.clone(), &ServerOptions::default()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(segkit_server::tls::serve(listener, config, app, shutdown.clone()));

    let trusted = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert_pem.as_bytes()).unwrap())
        .resolve("localhost", ([127, 0, 0, 1], port).into())
        .build()
        .unwrap();
    let url = format!("https://localhost:{port}/api/v1/entities");
    let r = trusted.get(&url).bearer_auth(&key).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(body["items"][0]["name"], "user", "{body}");
    // A client that does not trust the certificate fails the handshake; plain HTTP to the TLS port gets no
    // answer; the server keeps serving the trusted client afterwards.
    let untrusted = reqwest::Client::builder().resolve("localhost", ([127, 0, 0, 1], port).into()).build().unwrap();
    assert!(untrusted.get(&url).send().await.is_err(), "an untrusted certificate is refused");
    assert!(reqwest::get(format!("http://127.0.0.1:{port}/api/v1/health")).await.is_err());
    assert_eq!(trusted.get(&url).bearer_auth(&key).send().await.unwrap().status(), 200);
    // Bad files are refused with the file named and nothing of the key printed.
    std::fs::write(dir.path().join("bad.pem"), "not a pem").unwrap();
    let e = segkit_server::tls::server_config(&dir.path().join("bad.pem"), &dir.path().join("key.pem")).unwrap_err();
    assert!(e.to_string().contains("bad.pem"), "{e}");
    let e = segkit_server::tls::server_config(&dir.path().join("cert.pem"), &dir.path().join("bad.pem")).unwrap_err();
    assert!(e.to_string().contains("private key") && !e.to_string().contains("PRIVATE"), "{e}");
    shutdown.cancel();
    server.await.unwrap().unwrap();
}
