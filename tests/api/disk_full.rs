//! A full data disk (issue 12): writes get UNAVAILABLE with a clear
//! message, health reports NOT_SERVING, reads keep working, and everything
//! recovers by itself once space returns; shutdown stays clean.
//!
//! Needs root (it mounts a small tmpfs), so it is ignored by a plain
//! `cargo test`; `.ci/run` runs it with `-- --ignored disk_full`.

use std::{path::Path, process::Command, time::Duration};

use commentd::api::pb;
use tonic::Code;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use crate::helpers::{channel, get_comment, spawn_app_in, submission, without_profanity_filter};

/// A tmpfs of `size` mounted at `dir`, unmounted on drop.
struct Tmpfs<'a>(&'a Path);

impl<'a> Tmpfs<'a> {
    fn mount(dir: &'a Path, size: &str) -> Self {
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .expect("mount runs");
        assert!(status.success(), "mounting a tmpfs needs root");
        Self(dir)
    }

    fn resize(&self, size: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(self.0)
            .status()
            .expect("mount runs");
        assert!(status.success());
    }
}

impl Drop for Tmpfs<'_> {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.0).status();
    }
}

async fn health(addr: std::net::SocketAddr) -> ServingStatus {
    let mut health = HealthClient::new(channel(addr).await);
    let response = health
        .check(HealthCheckRequest {
            service: "comments.v1.CommentService".to_owned(),
        })
        .await
        .expect("health answers")
        .into_inner();
    response.status()
}

#[tokio::test]
#[ignore = "needs root to mount a tmpfs; .ci/run runs it"]
async fn disk_full_refuses_writes_keeps_reads_and_recovers_by_itself() {
    let temp = tempfile::tempdir().unwrap();
    let disk = Tmpfs::mount(temp.path(), "8m");
    let data_dir = temp.path().join("data");
    let mut app = spawn_app_in(&data_dir, without_profanity_filter).await;
    assert_eq!(health(app.addr).await, ServingStatus::Serving);

    // Fill the disk with approved comments until writes are refused.
    let filler = "An ordinary, long-winded remark about the council budget. ".repeat(30);
    let mut acknowledged = Vec::new();
    let refusal = loop {
        let request = submission(
            "news/full",
            &format!("{} {}", acknowledged.len(), filler),
            "c",
        );
        match app.client.submit_comment(request).await {
            Ok(response) => {
                let response = response.into_inner();
                assert_eq!(response.verdict.unwrap().decision(), pb::Decision::Approved);
                acknowledged.push(response.comment.unwrap().id);
                assert!(acknowledged.len() < 20_000, "the disk never filled");
            }
            Err(status) => break status,
        }
    };
    assert_eq!(refusal.code(), Code::Unavailable, "{refusal:?}");
    assert!(refusal.message().contains("disk is full"), "{refusal:?}");
    assert!(
        acknowledged.len() > 100,
        "only {} stored",
        acknowledged.len()
    );
    eprintln!(
        "disk full after {} acknowledged comments: {}",
        acknowledged.len(),
        refusal.message()
    );
    assert_eq!(health(app.addr).await, ServingStatus::NotServing);

    // Reads keep working, recent comments included.
    for id in acknowledged.iter().rev().take(20) {
        assert_eq!(&get_comment(&mut app.client, id).await.id, id);
    }
    // As large as the refused one: the reserve counts what a write stages
    // (a much shorter comment may still fit in the last few KiB).
    let status = app
        .client
        .submit_comment(submission(
            "news/full",
            &format!("still full? {filler}"),
            "d",
        ))
        .await
        .expect_err("still refused");
    assert_eq!(status.code(), Code::Unavailable);

    // More space: writes resume by themselves, health says so.
    disk.resize("64m");
    let mut serving = false;
    for _ in 0..50 {
        if health(app.addr).await == ServingStatus::Serving {
            serving = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(serving, "health did not recover");
    let after = app
        .client
        .submit_comment(submission("news/full", "space is back", "e"))
        .await
        .expect("writes resume")
        .into_inner();
    assert!(after.comment.is_some());
    for id in &acknowledged {
        assert_eq!(&get_comment(&mut app.client, id).await.id, id);
    }
    // A clean shutdown (the helper asserts the server stops with Ok).
    app.stop().await;
}
