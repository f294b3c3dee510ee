//! Issue 5: `flowgate gc` keeps every class of needed build (pointer, last N
//! revisions, young, pinned, in a running rollout) and deletes the rest with
//! their objects, never an object younger than the grace period; `--dry-run`
//! changes nothing. `flowgate fsck` finds a missing bundle, a flipped byte and a
//! manifest that disagrees with its bundle (one keeping fewer MD5s is fine), and
//! `--repair` deletes only staging leftovers and orphans. (The maintenance
//! lock, and fsck's checks of pointers and histories crafted in SQL, are in
//! fsck_gc_lock.rs.)

mod common;
mod fsck_gc_support;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{ledger_dump, run, state};
use flowgate_core::Build;
use flowgate_testkit::GitProject;
use fsck_gc_support::{
    age_store, artifacts, assert_frames_counted, craft, flip_byte, frame_keys, ids, keys, no_frames, objects_of,
    problems, set,
};
use serde_json::Value;

#[test]
fn gc_keeps_pointer_recent_young_pinned_and_rollout_builds_and_deletes_the_rest() {
    let p = GitProject::example();
    run(&p, &["status"]).success();
    let [o1, o2, o3, o4] = [1, 2, 3, 4].map(|n| craft(&p, n, "img:a", 10, true));
    let o5 = craft(&p, 2, "img:b", 10, true); // shares o2's bundle
    let (o6, o7, young) =
        (craft(&p, 6, "img:a", 10, true), craft(&p, 7, "img:a", 10, true), craft(&p, 8, "img:a", 0, true));
    for b in [&o1, &o2, &o3, &o4] {
        run(&p, &["release", "etl-daily", "--env", "qa", "--build", b.id.as_str()]).success();
    }
    run(&p, &["pin", o5.id.as_str(), "--reason", "audit"]).success();
    run(&p, &["rollout", "start", "--to", "prod", "--build", o6.id.as_str(), "--detach"]).success();
    age_store(&p, Duration::from_secs(7200));
    let gc = ["gc", "--keep-last", "2", "--keep-days", "1", "--grace", "1h", "--json"];

    let before = state(&p);
    let dry = run(&p, &[&gc[..], &["--dry-run"][..]].concat()).success().json();
    assert_eq!(state(&p), before, "--dry-run changed the ledger or the store");
    assert_eq!(ids(&dry, "deleted_builds"), set(&[&o1, &o2, &o7]), "{dry:#}");

    let done = run(&p, &gc).success().json();
    assert_eq!(ids(&done, "deleted_builds"), set(&[&o1, &o2, &o7]), "{done:#}");
    assert_eq!(done["deleted_objects"], dry["deleted_objects"]);
    let kept: Vec<(String, Vec<String>)> = done["kept"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            let reasons = k["reasons"].as_array().unwrap().iter().map(|r| r["kind"].as_str().unwrap().to_string());
            (k["build"].as_str().unwrap().to_string(), reasons.collect())
        })
        .collect();
    let expect = |b: &Build, r: &[&str]| (b.id.to_string(), r.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    let mut expected = vec![
        expect(&o3, &["recent"]),
        expect(&o4, &["pointer", "recent"]),
        expect(&o5, &["pinned"]),
        expect(&o6, &["rollout"]),
        expect(&young, &["young"]),
    ];
    expected.sort();
    assert_eq!(kept, expected);

    // o1 and o7 lose every object; o2 only its record: o5 still needs the shared bundle.
    let mut gone: BTreeSet<String> = [&o1, &o7].iter().flat_map(|b| objects_of(b)).collect();
    gone.insert(objects_of(&o2)[0].clone());
    let deleted: BTreeSet<String> =
        done["deleted_objects"].as_array().unwrap().iter().map(|o| o["key"].as_str().unwrap().to_string()).collect();
    assert_eq!(no_frames(deleted.clone()), gone);
    assert!(deleted.iter().any(|k| k.starts_with("frames/")), "o1's and o7's own frames go: {deleted:?}");
    let left = keys(&p);
    assert!(gone.iter().all(|k| !left.contains(k)), "{left:?}");
    for b in [&o3, &o4, &o5, &o6, &young] {
        assert!(objects_of(b).iter().all(|k| left.contains(k)), "objects of kept build {} went: {left:?}", b.id);
        assert!(frame_keys(&p, b).is_subset(&left), "frames of kept build {} went: {left:?}", b.id);
    }
    assert_frames_counted(&p);
    let freed: u64 = done["deleted_objects"].as_array().unwrap().iter().map(|o| o["size"].as_u64().unwrap()).sum();
    assert_eq!(done["freed_bytes"].as_u64(), Some(freed));
    assert!(freed > 0);

    // History keeps naming deleted builds, and every reader copes.
    let history = run(&p, &["history", "etl-daily", "--env", "qa", "--json"]).success().json();
    let named: Vec<&str> = history.as_array().unwrap().iter().map(|r| r["build"].as_str().unwrap()).collect();
    assert_eq!(named, vec![o4.id.as_str(), o3.id.as_str(), o2.id.as_str(), o1.id.as_str()]);
    run(&p, &["history", "etl-daily", "--env", "qa"]).success();
    run(&p, &["status"]).success();
    run(&p, &["diff", "qa", "prod"]).success();
    run(&p, &["fsck"]).success();
    let again = run(&p, &gc).success().json();
    assert!(again["deleted_builds"].as_array().unwrap().is_empty() && again["freed_bytes"] == 0, "{again:#}");
}

#[test]
fn gc_never_deletes_an_object_younger_than_the_grace_period() {
    let p = GitProject::example();
    run(&p, &["status"]).success();
    let old = craft(&p, 1, "img:a", 10, true);
    let orphan = craft(&p, 2, "img:a", 10, false);
    let fresh = craft(&p, 3, "img:a", 0, true);
    let gc = ["gc", "--keep-last", "0", "--keep-days", "0", "--grace", "1h", "--json"];

    // Everything was just written: the old build's row goes, no object does;
    // the build made now is kept whole, as if its `flowgate build` were still running.
    let first = run(&p, &gc).success().json();
    assert_eq!(ids(&first, "deleted_builds"), set(&[&old]), "{first:#}");
    assert_eq!(first["freed_bytes"], 0, "{first:#}");
    let young: BTreeSet<String> = no_frames(
        first["young_objects"].as_array().unwrap().iter().map(|o| o["key"].as_str().unwrap().to_string()).collect(),
    );
    let mut expected: BTreeSet<String> = objects_of(&old).into_iter().collect();
    expected.extend(objects_of(&orphan)[1..].iter().cloned());
    assert_eq!(young, expected);
    assert_eq!(first["kept"][0]["build"].as_str(), Some(fresh.id.as_str()));
    assert!(young.iter().all(|k| keys(&p).contains(k)));

    // Two hours later they are garbage; the kept build's objects stay.
    age_store(&p, Duration::from_secs(7200));
    let second = run(&p, &gc).success().json();
    let deleted: BTreeSet<String> =
        second["deleted_objects"].as_array().unwrap().iter().map(|o| o["key"].as_str().unwrap().to_string()).collect();
    assert_eq!(no_frames(deleted), expected);
    let mut fresh_objects: BTreeSet<String> = objects_of(&fresh).into_iter().collect();
    fresh_objects.extend(frame_keys(&p, &fresh));
    assert_eq!(keys(&p), fresh_objects);
    run(&p, &["fsck"]).success();
}

#[test]
fn fsck_finds_missing_and_damaged_bundles_and_repair_removes_only_leftovers_and_orphans() {
    let p = GitProject::example();
    let b1 = run(&p, &["build", "--json"]).success().json()["build"].clone();
    run(&p, &["release", "--all", "--env", "qa", "--build", "HEAD"]).success();
    p.write("lib/common.py", "MARKER = \"v2\"\n");
    p.commit("v2");
    let b2 = run(&p, &["build", "--json"]).success().json()["build"].clone();
    let bundle = |b: &Value| artifacts(&p).join(format!("bundles/{}.frames", b["bundle"].as_str().unwrap()));
    // A frame of b2 that b1 lacks: the one holding the changed file.
    let frames = |b: &Value| {
        let list = std::fs::read_to_string(bundle(b)).unwrap();
        list.lines().skip(1).map(|l| l.split(' ').next().unwrap().to_string()).collect::<BTreeSet<_>>()
    };
    let own_frame = artifacts(&p).join(format!("frames/{}.zst", frames(&b2).difference(&frames(&b1)).next().unwrap()));
    let clean = run(&p, &["fsck", "--json"]).success().json();
    assert_eq!((clean["consistent"].as_bool(), clean["checked"]["builds"].as_u64()), (Some(true), Some(2)));

    let saved = std::fs::read(bundle(&b1)).unwrap();
    std::fs::remove_file(bundle(&b1)).unwrap();
    let missing = run(&p, &["fsck", "--json"]).expect_code(1);
    let found = problems(&missing.json());
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].0, "missing_bundle");
    assert!(found[0].1.contains(b1["id"].as_str().unwrap()), "{found:?}");
    assert!(missing.stderr.contains("fsck found 1 problem(s)"), "{}", missing.stderr);
    std::fs::write(bundle(&b1), saved).unwrap();

    // A flipped byte, leftovers of killed uploads and orphans, old and new.
    flip_byte(&own_frame);
    let root = artifacts(&p);
    let orphan = craft(&p, 9, "img:a", 10, false);
    std::fs::write(root.join("bundles/0123.tar.zst#4242"), b"half a bundle").unwrap();
    age_store(&p, Duration::from_secs(7200));
    std::fs::write(root.join("manifests/0123.json#77"), b"{").unwrap();
    let young_orphan = craft(&p, 10, "img:a", 10, false);
    std::fs::write(root.join("README"), b"not flowgate's").unwrap();
    let text = run(&p, &["fsck"]).expect_code(1);
    assert!(text.stdout.contains(&format!("PROBLEM  build `{}`", b2["id"].as_str().unwrap())), "{}", text.stdout);
    assert!(text.stdout.contains("leftover bundles/0123.tar.zst#4242"), "{}", text.stdout);

    let ledger_before = ledger_dump(&p).unwrap();
    let damaged = std::fs::read(&own_frame).unwrap();
    let repaired = run(&p, &["fsck", "--repair", "--json"]).expect_code(1).json();
    let found = problems(&repaired);
    assert_eq!(found.iter().map(|f| f.0.as_str()).collect::<Vec<_>>(), ["corrupt_bundle"], "{found:?}");
    let deleted: BTreeSet<String> =
        repaired["repaired"].as_array().unwrap().iter().map(|o| o["key"].as_str().unwrap().to_string()).collect();
    let mut expected: BTreeSet<String> = objects_of(&orphan)[1..].iter().cloned().collect();
    expected.insert("bundles/0123.tar.zst#4242".into());
    assert_eq!(no_frames(deleted.clone()), expected, "only old leftovers and orphans go");
    assert!(deleted.iter().any(|k| k.starts_with("frames/")), "with the orphan's own frame: {deleted:?}");
    let left = keys(&p);
    assert!(objects_of(&young_orphan)[1..].iter().all(|k| left.contains(k)), "{left:?}");
    assert!(left.contains("manifests/0123.json#77") && left.contains("README"), "{left:?}");
    assert_eq!(ledger_dump(&p).unwrap(), ledger_before, "--repair never writes the ledger");
    assert!(std::fs::read(&own_frame).unwrap() == damaged, "--repair never rewrites a referenced bundle");
    assert!(frame_keys(&p, &young_orphan).is_subset(&left), "a young orphan keeps its frames");
    assert_eq!(repaired["unknown"][0]["key"], "README");

    flip_byte(&own_frame);
    let ok = run(&p, &["fsck", "--json"]).success().json();
    assert_eq!(ok["consistent"], true, "{ok:#}");
}

/// A change made to a stored manifest.
type Edit<'a> = &'a dyn Fn(&mut Value);

/// A build's manifest keeps MD5s for its flows' entrypoints only, fewer than the
/// bundle's `*.py` files have: fsck accepts that, and any MD5 it keeps must be
/// right. A manifest that disagrees with its bundle is a `manifest_mismatch`.
#[test]
fn fsck_accepts_a_manifest_with_fewer_md5s_and_finds_one_that_disagrees_with_its_bundle() {
    let p = GitProject::example();
    let built = run(&p, &["build", "--json"]).success().json()["build"].clone();
    let path = artifacts(&p).join(format!("manifests/{}.json", built["bundle"].as_str().unwrap()));
    let original = std::fs::read(&path).unwrap();
    let manifest: Value = serde_json::from_slice(&original).unwrap();
    let files = manifest["files"].as_array().unwrap();
    let python = files.iter().filter(|f| f["path"].as_str().unwrap().ends_with(".py")).count();
    let kept: Vec<usize> = (0..files.len()).filter(|i| files[*i].get("md5").is_some()).collect();
    assert!(!kept.is_empty() && kept.len() < python, "entrypoints only keep an MD5: {manifest:#}");
    run(&p, &["fsck"]).success();

    let rewrite = |edit: &dyn Fn(&mut Value)| {
        let mut changed = manifest.clone();
        edit(&mut changed);
        std::fs::write(&path, serde_json::to_vec(&changed).unwrap()).unwrap();
    };
    rewrite(&|m| {
        m["files"].as_array_mut().unwrap().iter_mut().for_each(|f| drop(f.as_object_mut().unwrap().remove("md5")))
    });
    assert_eq!(run(&p, &["fsck", "--json"]).success().json()["consistent"], true, "no MD5 at all is fewer");

    let wrong_md5 = |m: &mut Value| m["files"][kept[0]]["md5"] = "00000000000000000000000000000000".into();
    let other_size = |m: &mut Value| m["files"][0]["size"] = 999_999.into();
    let damages: [(&str, Edit<'_>); 2] = [("a wrong MD5", &wrong_md5), ("another size", &other_size)];
    for (what, edit) in damages {
        rewrite(edit);
        let found = problems(&run(&p, &["fsck", "--json"]).expect_code(1).json());
        assert_eq!(found.iter().map(|f| f.0.as_str()).collect::<Vec<_>>(), ["manifest_mismatch"], "{what}: {found:?}");
    }
    std::fs::write(&path, original).unwrap();
    run(&p, &["fsck"]).success();
}
