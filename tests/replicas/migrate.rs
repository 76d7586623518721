//! `commentd migrate-to-nats`: a single-node data dir moves into the stream
//! with its comment ids; new ids continue above them; a second run adds
//! nothing.

use std::process::Command;

use crate::{list_all, nats::NatsCluster, replica, server::Server, submission, wait_for_comments};

fn migrate(data_dir: &std::path::Path, urls: &str) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_commentd"))
        .arg("migrate-to-nats")
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--log", urls, "--log-replicas", "3"])
        .env_remove("COMMENTD_LOG")
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_node_data_dir_moves_into_the_stream_with_its_ids() {
    let folder = tempfile::TempDir::new().unwrap();
    let data_dir = folder.path().join("data");
    let before = {
        let single = Server::start_in(&data_dir, &["--rate-limit-burst", "0"]);
        let mut client = single.client().await;
        for n in 0..30 {
            client
                .submit_comment(submission(
                    "moving",
                    "reader",
                    &format!("Comment {n} written before the move."),
                    &format!("before-{n}"),
                ))
                .await
                .expect("stored");
        }
        list_all(&mut client, "moving").await
        // kill -9 here: what was acknowledged is on disk
    };
    assert_eq!(before.len(), 30);

    let cluster = NatsCluster::start(3);
    let report = migrate(&data_dir, &cluster.urls());
    assert!(report.contains("published 30 events"), "{report}");
    let again = migrate(&data_dir, &cluster.urls());
    assert!(again.contains("published 0 events"), "{again}");

    let replica = replica(&cluster);
    let after = wait_for_comments(&replica, "moving", 30, std::time::Duration::from_secs(10)).await;
    let ids = |comments: &[commentd::api::pb::Comment]| {
        comments
            .iter()
            .map(|c| (c.id.clone(), c.text.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&after), ids(&before), "same ids, same texts");
    let mut client = replica.client().await;
    let new = client
        .submit_comment(submission("moving", "reader", "After the move.", "after-1"))
        .await
        .unwrap()
        .into_inner()
        .comment
        .unwrap();
    assert!(new.id > before.last().unwrap().id, "new ids continue above");
    // A retry of a key used before the move is answered as before.
    let retried = client
        .submit_comment(submission(
            "moving",
            "reader",
            "Comment 3 written before the move.",
            "before-3",
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(retried.replayed);
    assert_eq!(retried.comment.unwrap().id, before[3].id);
}
