//! A server started with an auth string: refused without it, served with HTTP
//! Basic, and the secret appears neither in Debug output nor in TRACE logs.

use std::io::Write;
use std::sync::{Arc, Mutex};

use flowgate_prefect::{PrefectAuth, PrefectClient, PrefectError};
use flowgate_testkit::prefect::PrefectServer;

const AUTH: &str = "user:secret-7f3a";

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn auth_string_server_refuses_without_it_and_never_sees_it_logged() {
    let server = PrefectServer::start_with_auth(Some(AUTH));
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let anonymous = PrefectClient::new(&server.api_url(), None).unwrap();
    let err = anonymous.get_or_create_flow("guarded").await.unwrap_err();
    assert!(matches!(err, PrefectError::Unauthorized { status: 401, .. }), "{err:?}");

    let wrong = PrefectClient::new(&server.api_url(), Some(PrefectAuth::Basic("user:wrong".into()))).unwrap();
    assert!(matches!(wrong.get_or_create_flow("guarded").await, Err(PrefectError::Unauthorized { .. })));

    let client = PrefectClient::new(&server.api_url(), Some(PrefectAuth::Basic(AUTH.into()))).unwrap();
    let flow = client.get_or_create_flow("guarded").await.expect("authorised call");
    assert_eq!(flow.name, "guarded");
    assert!(client.health().await.expect("health"));

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("prefect_request"), "requests are traced:\n{logs}");
    assert!(logs.contains("status=200"), "status is traced:\n{logs}");
    let encoded = "dXNlcjpzZWNyZXQtN2YzYQ"; // base64 of AUTH, without padding
    for shown in [logs.as_str(), &format!("{client:?}"), &format!("{err}")] {
        assert!(!shown.contains("secret-7f3a") && !shown.contains(encoded), "secret leaked:\n{shown}");
    }
}
