//! The data directory holds the pepper and the SQLite database: on a fresh
//! start it is created readable by the owner only, and so are the files in
//! it, journals included.

#![cfg(unix)]

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use atk_core::SystemClock;
use atk_core::policy::{Confirmation, KeyRequest};
use atk_server::Config;
use atk_server::service::Caller;
use atk_server::startup::Services;

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn a_fresh_data_directory_is_0700_and_its_files_0600() {
    let parent = tempfile::tempdir().unwrap();
    let data_dir = parent.path().join("nested").join("data");
    let config = Config {
        data_dir: data_dir.clone(),
        ..Config::default()
    };
    let services = Services::open(&config, Arc::new(SystemClock))
        .await
        .unwrap();
    services.service.ensure_demo_project().await.unwrap();
    let project = atk_core::ids::ProjectId::parse("project_identity_demo").unwrap();
    let request = KeyRequest {
        confirmations: Confirmation::ALL.to_vec(),
        ..KeyRequest::default()
    };
    // A write, so SQLite has its write-ahead log and shared-memory files.
    services
        .service
        .create_key(&Caller::cli(), &project, "mode check", &request)
        .await
        .unwrap();

    assert_eq!(mode(&data_dir), 0o700, "the data directory");
    let files: Vec<_> = std::fs::read_dir(&data_dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    let names: Vec<String> = files
        .iter()
        .map(|path| path.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().any(|n| n == "atk.sqlite"), "{names:?}");
    assert!(names.iter().any(|n| n.ends_with("-wal")), "{names:?}");
    for file in &files {
        assert_eq!(mode(file), 0o600, "{}", file.display());
    }
    services.shutdown().await;
}
