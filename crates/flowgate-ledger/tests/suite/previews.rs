//! Stories of preview envs: opened, reopened with a new build and expiry
//! (keeping when it was first made), closed once, listed per project.

use chrono::{DateTime, Utc};
use flowgate_core::BuildId;
use flowgate_ledger::{PreviewRecord, ProjectClaim};

use super::{env, Target};

fn at(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000 + seconds, 0).unwrap()
}

fn preview(name: &str, branch: &str, build: &str, created: i64, expires: i64) -> PreviewRecord {
    PreviewRecord {
        env: env(name),
        branch: branch.into(),
        from_env: env("qa"),
        from_config: "qa".into(),
        build: build.parse::<BuildId>().unwrap(),
        actor: "alice".into(),
        created_at: at(created),
        expires_at: at(expires),
        closed_at: None,
    }
}

pub async fn previews_open_reopen_and_close_once_per_project(t: &Target) {
    let ledger = t.open().await;
    assert!(ledger.previews().await.unwrap().is_empty());
    let a = preview("preview-feat-a", "feat/a", "aaaa0000000000000001", 0, 100);
    let b = preview("preview-feat-b", "feat/b", "aaaa0000000000000002", 10, 50);
    ledger.open_preview(&a).await.unwrap();
    ledger.open_preview(&b).await.unwrap();
    assert_eq!(ledger.previews().await.unwrap(), [a.clone(), b.clone()], "oldest first, as given");
    assert!(!b.expired(at(49)) && b.expired(at(50)));

    // `up` again: the new build and expiry, the first creation time kept.
    let again =
        PreviewRecord { created_at: at(60), ..preview("preview-feat-a", "feat/a", "aaaa0000000000000003", 60, 200) };
    ledger.open_preview(&again).await.unwrap();
    let listed = ledger.previews().await.unwrap();
    assert_eq!(listed[0], PreviewRecord { created_at: at(0), ..again.clone() });

    // Closed once; closing again is a no; reopening clears it.
    assert!(ledger.close_preview(&env("preview-feat-b"), at(70)).await.unwrap());
    assert!(!ledger.close_preview(&env("preview-feat-b"), at(80)).await.unwrap());
    assert!(!ledger.close_preview(&env("preview-none"), at(80)).await.unwrap());
    let closed = ledger.previews().await.unwrap().into_iter().find(|p| p.env == env("preview-feat-b")).unwrap();
    assert_eq!(closed.closed_at, Some(at(70)));
    assert!(!closed.expired(at(1000)), "a closed preview is not expired: gc has nothing left to do");
    ledger.open_preview(&b).await.unwrap();
    let reopened = ledger.previews().await.unwrap().into_iter().find(|p| p.env == env("preview-feat-b")).unwrap();
    assert_eq!(reopened.closed_at, None);

    // Another project sees none of them.
    let other = t.open_as(&ProjectClaim::named("beta")).await;
    assert!(other.previews().await.unwrap().is_empty());
    assert!(!other.close_preview(&env("preview-feat-a"), at(90)).await.unwrap());
}
