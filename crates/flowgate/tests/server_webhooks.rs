//! Notifications through a real `flowgate serve` and local receivers: the
//! event a CLI release committed to the ledger reaches every webhook that
//! wants it, signed, in its format; a receiver that fails five times gets it
//! once more with the same idempotency key; a server killed while it posts
//! leaves the event in the outbox, and after a restart it arrives. A refusal
//! by the approval gate asks for an approval, and the approval is notified.

mod common;

use std::path::Path;
use std::time::Duration;

use common::server::{released_project, Server};
use flowgate_ledger::{LedgerDatabase, OutboxRecord};
use flowgate_testkit::receiver::{Received, Receiver};
use hmac::{Hmac, Mac};
use sha2::Sha256;

const KEY: &str = "webhook-signing-key";

/// `server.toml` with fast delivery settings and `hooks` (TOML of `[[webhooks]]` entries).
fn server_config(dir: &Path, ledger: &str, hooks: &str) -> String {
    let path = dir.join("server.toml");
    let text = format!(
        "ledger = \"{ledger}\"\n\n[notify]\npoll = \"100ms\"\ntimeout = \"1s\"\nretry_base = \"100ms\"\nretry_max = \"1s\"\n\n{hooks}"
    );
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// True when `r` is signed with [`KEY`] as the README tells receivers to check.
fn signed(r: &Received) -> bool {
    let (Some(timestamp), Some(signature)) = (r.header("x-flowgate-timestamp"), r.header("x-flowgate-signature"))
    else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(KEY.as_bytes()).unwrap();
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(&r.body);
    signature
        .strip_prefix("sha256=")
        .and_then(|hex| hex::decode(hex).ok())
        .is_some_and(|sig| mac.verify_slice(&sig).is_ok())
}

fn outbox(ledger: &str, dir: &Path) -> Vec<OutboxRecord> {
    let url = ledger.parse().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async { LedgerDatabase::open(&url, dir).await.unwrap().outbox_events(50).await.unwrap() })
}

fn answered(received: &[Received]) -> usize {
    received.iter().filter(|r| r.answered == Some(200)).count()
}

#[test]
fn a_release_reaches_each_webhook_signed_and_a_failing_receiver_gets_it_once_more_with_the_same_key() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = format!("sqlite://{}", dir.path().join("ledger.db").display());
    let (ops, chat) = (Receiver::start(), Receiver::start());
    ops.fail(5);
    // The CLI's release, in direct mode, writes its event in the release's own transaction.
    let alpha = released_project(&ledger);
    let config = server_config(
        dir.path(),
        &ledger,
        "[[webhooks]]\nname = \"ops\"\nurl = { env = \"HOOK_OPS_URL\" }\nsecret = { env = \"HOOK_KEY\" }\n\n\
         [[webhooks]]\nname = \"chat\"\nurl = { env = \"HOOK_CHAT_URL\" }\nsecret = { env = \"HOOK_KEY\" }\n\
         format = \"slack\"\nenvs = [\"qa\"]\nevents = [\"release\"]\n\n\
         [[webhooks]]\nname = \"prod-only\"\nurl = { env = \"HOOK_CHAT_URL\" }\nsecret = { env = \"HOOK_KEY\" }\nenvs = [\"prod\"]\n",
    );
    let (ops_url, chat_url) = (ops.url("/ops"), chat.url("/chat"));
    let env = [("HOOK_OPS_URL", ops_url.as_str()), ("HOOK_CHAT_URL", chat_url.as_str()), ("HOOK_KEY", KEY)];
    let server = Server::start_with_env(&["--config", &config], &env);

    let got = ops.wait_for("an answered delivery", Duration::from_secs(60), |r| answered(r) == 1);
    assert_eq!(got.len(), 6, "five failures, then the one answered: {got:#?}");
    let key = got[0].header("idempotency-key").expect("an idempotency key").to_string();
    assert!(got.iter().all(|r| r.header("idempotency-key") == Some(key.as_str())), "one key on every attempt");
    assert!(got.iter().all(signed), "every attempt is signed with the webhook's key");
    let body = got[5].json();
    assert_eq!(
        (body["type"].as_str(), body["project"].as_str(), body["env"].as_str()),
        (Some("release"), Some("alpha"), Some("qa"))
    );
    assert_eq!((body["id"].as_str(), body["flows"][0]["flow"].as_str()), (Some(key.as_str()), Some("ingest")));
    assert_eq!(got[5].header("x-flowgate-event"), Some("release"));

    let slack = chat.wait_for("the Slack delivery", Duration::from_secs(30), |r| !r.is_empty());
    let text = slack[0].json()["text"].as_str().unwrap().to_string();
    assert!(text.starts_with("alpha/qa: release by ") && text.contains("(ingest)"), "{text}");
    assert!(slack[0].json()["blocks"][0]["text"]["text"].as_str().unwrap().contains("• ingest → "));
    assert!(signed(&slack[0]));

    // Settled: nothing more arrives, and the outbox says who got it after how many attempts.
    std::thread::sleep(Duration::from_millis(1_500));
    assert_eq!((ops.received().len(), chat.received().len()), (6, 1), "the prod-only webhook wanted nothing");
    let events = outbox(&ledger, dir.path());
    let release = events.iter().find(|e| e.event.id == key).expect("the release's event");
    assert!(release.settled_at.is_some(), "{release:?}");
    let attempts: Vec<(&str, u32, bool)> =
        release.deliveries.iter().map(|d| (d.hook.as_str(), d.attempts, d.delivered_at.is_some())).collect();
    assert_eq!(attempts, [("chat", 1, true), ("ops", 6, true)]);
    assert_eq!(release.deliveries[1].last_error, None);

    // A promotion the approval gate refuses notifies the refusal and asks for
    // an approval; the approval is notified too. Each once, with its own key.
    let toml = std::fs::read_to_string(alpha.path().join("flowgate.toml")).unwrap();
    alpha.write("flowgate.toml", &toml.replace("[envs.prod]\n", "[envs.prod]\npolicy = { approval = true }\n"));
    alpha.commit("prod needs an approval");
    common::run(&alpha, &["promote", "--from", "qa", "--to", "prod"]).expect_code(3);
    let build = common::run(&alpha, &["builds", "--json"]).success().json()[0]["id"].as_str().unwrap().to_string();
    common::run(&alpha, &["approve", &build, "--env", "prod", "--reason", "<b>fine</b>"]).success();
    let kinds =
        |got: &[Received]| got.iter().map(|r| r.json()["type"].as_str().unwrap().to_string()).collect::<Vec<_>>();
    let got = ops.wait_for("the refusal and the approval", Duration::from_secs(30), |got| got.len() == 9);
    assert_eq!(kinds(&got[6..]).iter().filter(|k| k.as_str() != "approval.given").count(), 2, "{:?}", kinds(&got));
    for kind in ["gate.refused", "approval.requested", "approval.given"] {
        assert!(kinds(&got).iter().any(|k| k == kind), "no {kind}: {:?}", kinds(&got));
    }
    let approved = got.iter().map(Received::json).find(|b| b["type"] == "approval.given").unwrap();
    assert_eq!((approved["env"].as_str(), approved["reason"].as_str()), (Some("prod"), Some("<b>fine</b>")));

    // The URLs are secrets: the server's log (at -vvv) never shows them.
    let log = server.log();
    assert!(log.contains("delivery failed: HTTP 500"), "{log}");
    assert!(!log.contains(&ops_url) && !log.contains(&chat_url), "a webhook URL in the log:\n{log}");
}

#[test]
fn an_event_whose_delivery_a_killed_server_left_unfinished_arrives_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = format!("sqlite://{}", dir.path().join("ledger.db").display());
    let receiver = Receiver::start();
    receiver.hold();
    let config = server_config(
        dir.path(),
        &ledger,
        "[[webhooks]]\nname = \"ops\"\nurl = { env = \"HOOK_URL\" }\nsecret = { env = \"HOOK_KEY\" }\n",
    );
    let url = receiver.url("/hook");
    let env = [("HOOK_URL", url.as_str()), ("HOOK_KEY", KEY)];
    let mut first = Server::start_with_env(&["--config", &config], &env);

    // Committed while the server runs; it starts posting, the receiver holds the request, the server dies.
    let _alpha = released_project(&ledger);
    let held = receiver.wait_for("the first attempt", Duration::from_secs(30), |r| !r.is_empty());
    let key = held[0].header("idempotency-key").unwrap().to_string();
    first.kill();
    assert!(outbox(&ledger, dir.path()).iter().any(|e| e.event.id == key && e.settled_at.is_none()), "still owed");

    receiver.answer();
    let _second = Server::start_with_env(&["--config", &config], &env);
    // The dead server's claim runs out (1s timeout x a batch of 8 + a poll), then the new one posts.
    let got = receiver.wait_for("the delivery after the restart", Duration::from_secs(60), |r| answered(r) == 1);
    assert!(got.iter().all(|r| r.header("idempotency-key") == Some(key.as_str())), "the same key: {got:#?}");
    assert!(got.iter().all(signed));
    let settled = || outbox(&ledger, dir.path()).iter().any(|e| e.event.id == key && e.settled_at.is_some());
    for _ in 0..50 {
        if settled() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the delivered event was not settled: {:#?}", outbox(&ledger, dir.path()));
}
