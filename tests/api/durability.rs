//! Restarts, crashes and health.

use std::{sync::Arc, time::Duration};

use tokio::sync::Mutex;

use crate::helpers::{
    ServerProcess, connect, get_comment, list_all, spawn_app, spawn_app_in, submission,
    submit_approved,
};

#[tokio::test]
async fn a_restart_on_the_same_folder_keeps_everything() {
    let mut app = spawn_app().await;
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(submit_approved(&mut app.client, "news/1", &format!("c{i}")).await);
    }
    let data_dir = app.data_dir.clone();
    let keep = app.stop().await;

    let mut app = spawn_app_in(&data_dir, |_| {}).await;
    assert_eq!(list_all(&mut app.client, "news/1").await, ids);
    let fetched = get_comment(&mut app.client, &ids[7].id).await;
    assert_eq!(fetched, ids[7]);
    // New ids continue after the old ones.
    let next = submit_approved(&mut app.client, "news/1", "after restart").await;
    assert!(next.id > ids.last().unwrap().id);
    app.stop().await;
    drop(keep);
}

#[tokio::test]
async fn a_second_server_on_a_locked_folder_fails_clearly() {
    let app = spawn_app().await;
    let error = match commentd::Application::build(crate::helpers::test_config(&app.data_dir)).await
    {
        Ok(_) => panic!("a second server must not open the same folder"),
        Err(error) => format!("{error:#}"),
    };
    assert!(error.contains("cannot open the data folder"), "{error}");
    app.stop().await;
}

#[tokio::test]
async fn every_acknowledged_comment_survives_kill_9() {
    let temp = tempfile::TempDir::new().unwrap();
    let mut server = ServerProcess::start(
        temp.path(),
        &[
            "--rate-limit-burst",
            "0",
            "--peer-rate-limit-per-sec",
            "0",
            "--duplicate-window-secs",
            "0",
            "--profanity-hold-at",
            "never",
            "--profanity-reject-at",
            "never",
        ],
    );
    let client = connect(server.addr).await;
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let writers: Vec<_> = (0..16)
        .map(|writer| {
            let mut client = client.clone();
            let acknowledged = acknowledged.clone();
            tokio::spawn(async move {
                for i in 0.. {
                    let text = format!("writer {writer} comment {i}");
                    match client
                        .submit_comment(submission("news/crash", &text, "w"))
                        .await
                    {
                        Ok(response) => {
                            let response = response.into_inner();
                            if let Some(comment) = response.comment {
                                acknowledged.lock().await.push(comment);
                            }
                        }
                        Err(_) => return,
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(2000)).await;
    server.child.kill().expect("SIGKILL");
    server.child.wait().unwrap();
    for writer in writers {
        writer.await.unwrap();
    }
    let acknowledged = acknowledged.lock().await.clone();
    assert!(
        acknowledged.len() > 20,
        "only {} acknowledged",
        acknowledged.len()
    );

    let server = ServerProcess::start(temp.path(), &[]);
    let mut client = connect(server.addr).await;
    let stored = list_all(&mut client, "news/crash").await;
    let stored_ids: std::collections::HashSet<_> = stored.iter().map(|c| c.id.clone()).collect();
    let lost: Vec<_> = acknowledged
        .iter()
        .filter(|c| !stored_ids.contains(&c.id))
        .collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged comments lost, e.g. {:?}",
        lost.len(),
        lost.first()
    );
    let distinct: std::collections::HashSet<_> = stored.iter().map(|c| &c.text).collect();
    assert_eq!(distinct.len(), stored.len(), "a comment was stored twice");
    eprintln!(
        "kill -9 round: {} acknowledged, {} stored, 0 lost, 0 duplicated",
        acknowledged.len(),
        stored.len()
    );
    for comment in acknowledged.iter().step_by(97) {
        let fetched = get_comment(&mut client, &comment.id).await;
        assert_eq!(&fetched, comment);
    }
}

#[tokio::test]
async fn sigterm_stops_the_binary_cleanly() {
    let temp = tempfile::TempDir::new().unwrap();
    let mut server = ServerProcess::start(temp.path(), &[]);
    let mut client = connect(server.addr).await;
    submit_approved(&mut client, "news/1", "before stopping").await;
    let pid = server.child.id().to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let exit = loop {
        if let Some(exit) = server.child.try_wait().unwrap() {
            break exit;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no exit within 15 s of SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(exit.success(), "{exit:?}");
}

#[tokio::test]
async fn health_reports_serving() {
    let app = spawn_app().await;
    let mut health =
        tonic_health::pb::health_client::HealthClient::new(crate::helpers::channel(app.addr).await);
    for service in ["", "comments.v1.CommentService"] {
        let response = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: service.to_owned(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            response.status(),
            tonic_health::pb::health_check_response::ServingStatus::Serving
        );
    }
    app.stop().await;
}
