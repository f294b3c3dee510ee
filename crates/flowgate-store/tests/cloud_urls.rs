//! Cloud store URLs parse and build a store without any network, and their
//! secrets never reach `url()`, `Display` or `Debug`. One test function, because it
//! sets process environment variables that the builders read.

use flowgate_store::ArtifactStore;

fn assert_clean(store: &ArtifactStore, secrets: &[&str]) {
    let shown = format!("{} {store} {store:?}", store.url());
    for secret in secrets {
        assert!(!shown.contains(secret), "`{secret}` leaked into {shown}");
    }
}

#[test]
fn cloud_urls_build_stores_and_redact_secrets() {
    // Dummy settings so no builder looks for real credentials or an account.
    std::env::set_var("AWS_REGION", "eu-west-1");
    std::env::set_var("AWS_ACCESS_KEY_ID", "dummy");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "dummy");
    std::env::set_var("AZURE_STORAGE_ACCOUNT_NAME", "devaccount");
    std::env::set_var("AZURE_STORAGE_ACCOUNT_KEY", "ZHVtbXk=");
    let here = std::path::Path::new(".");

    let s3 = ArtifactStore::open("s3://bucket/some/prefix", here).unwrap();
    assert_eq!(s3.url(), "s3://bucket/some/prefix");
    let s3 = ArtifactStore::open("s3://AKIDEXAMPLE:top%2Fsecret@bucket/p", here).unwrap();
    assert_eq!(s3.url(), "s3://bucket/p");
    assert_clean(&s3, &["AKIDEXAMPLE", "top", "secret"]);
    assert_eq!(ArtifactStore::open("s3://bucket", here).unwrap().url(), "s3://bucket");

    let gs = ArtifactStore::open("gs://bucket/prefix", here).unwrap();
    assert_eq!(gs.url(), "gs://bucket/prefix");

    let az = ArtifactStore::open("az://container/prefix?sv=2024-01-01&sig=supersecret", here).unwrap();
    assert_eq!(az.url(), "az://container/prefix");
    assert_clean(&az, &["supersecret", "sig="]);

    // A key id without a secret is refused, and the refusal shows neither.
    let err = ArtifactStore::open("s3://AKIDEXAMPLE@bucket/p", here).unwrap_err();
    assert!(err.to_string().contains("s3://"), "{err}");
}
