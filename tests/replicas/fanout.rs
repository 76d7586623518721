//! Comments reach subscribers of every replica; moderation state is shared;
//! a reader whose replica dies resumes on another without gap or duplicate.

use std::time::{Duration, Instant};

use commentd::api::pb;
use tokio_stream::StreamExt;

use crate::{
    authorised, moderator, nats::NatsCluster, quantile, replica, server::subscribe_request,
    submission,
};

fn comment_of(event: pb::SubscribeCommentsResponse) -> pb::Comment {
    match event.event {
        Some(pb::subscribe_comments_response::Event::Comment(comment)) => comment,
        other => panic!("expected a comment, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_comment_submitted_to_one_replica_reaches_subscribers_of_another() {
    let cluster = NatsCluster::start(3);
    let (a, b) = (replica(&cluster), replica(&cluster));
    let mut on_b = b
        .client()
        .await
        .subscribe_comments(subscribe_request("fanout"))
        .await
        .unwrap()
        .into_inner();
    let mut client_a = a.client().await;
    let mut across = Vec::new();
    for n in 0..100 {
        let sent = Instant::now();
        let stored = client_a
            .submit_comment(submission(
                "fanout",
                "reader-1",
                &format!("Comment number {n} on the council's budget vote."),
                "",
            ))
            .await
            .expect("A stores it")
            .into_inner()
            .comment
            .expect("approved");
        let received = tokio::time::timeout(Duration::from_secs(10), on_b.next())
            .await
            .expect("B's subscriber hears of it in time")
            .expect("the stream stays open")
            .expect("no error");
        across.push(sent.elapsed());
        assert_eq!(comment_of(received).id, stored.id, "in order, none missed");
        // Read your writes on the replica that acknowledged.
        let read = client_a
            .get_comment(pb::GetCommentRequest {
                comment_id: stored.id.clone(),
            })
            .await
            .expect("A finds what it acknowledged");
        assert_eq!(read.into_inner().comment.unwrap().text, stored.text);
    }
    eprintln!(
        "submit on A -> subscriber on B (R3, sync always, debug build): p50 {:?}, p99 {:?}",
        quantile(&mut across, 0.5),
        quantile(&mut across, 0.99)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moderation_state_flows_through_the_log() {
    let cluster = NatsCluster::start(3);
    let (a, b) = (replica(&cluster), replica(&cluster));
    let mut client_b = b.client().await;
    let mut published = Vec::new();
    for n in 0..2 {
        let stored = client_b
            .submit_comment(submission(
                "state",
                "troll",
                &format!("An early comment number {n} before the trouble."),
                "",
            ))
            .await
            .expect("stored")
            .into_inner();
        published.push(stored.comment.unwrap().id);
    }
    // Wait until A lists them, then ban with removals: the ban and both
    // removals are one atomic batch with a condition on each comment.
    crate::wait_for_comments(&a, "state", 2, Duration::from_secs(10)).await;
    let banned = moderator(&a)
        .await
        .ban_client(authorised(pb::BanClientRequest {
            client_id: "troll".to_owned(),
            reason: "abuse".to_owned(),
            remove_comments: true,
            ..Default::default()
        }))
        .await
        .expect("A bans")
        .into_inner();
    assert_eq!(banned.removed_comment_ids, published);
    let listed =
        crate::wait_for_comments(&b, "state", usize::MAX, Duration::from_millis(500)).await;
    assert!(listed.is_empty(), "B still lists {listed:?}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let verdict = client_b
            .submit_comment(submission(
                "state",
                "troll",
                &format!("Trying again on the other replica {:?}.", Instant::now()),
                "",
            ))
            .await
            .expect("B answers")
            .into_inner()
            .verdict
            .unwrap();
        if verdict.decision() == pb::Decision::Rejected {
            assert!(
                verdict.reasons.iter().any(|r| r.code == "ban.client"),
                "{verdict:?}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "B never learned of A's ban: {verdict:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_whose_replica_dies_resumes_on_another_without_gap_or_duplicate() {
    let cluster = NatsCluster::start(3);
    let (a, b) = (replica(&cluster), replica(&cluster));
    let mut reading = a
        .client()
        .await
        .subscribe_comments(subscribe_request("resume"))
        .await
        .unwrap()
        .into_inner();
    let mut writer = b.client().await;
    let writing = tokio::spawn(async move {
        let mut acknowledged = Vec::new();
        for n in 0..60 {
            let stored = writer
                .submit_comment(submission(
                    "resume",
                    "reader-2",
                    &format!("Live blog remark {n} about the match."),
                    &format!("resume-{n}"),
                ))
                .await
                .expect("B stores it")
                .into_inner()
                .comment
                .unwrap();
            acknowledged.push(stored.id);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        acknowledged
    });
    let mut seen = Vec::new();
    while seen.len() < 20 {
        let event = tokio::time::timeout(Duration::from_secs(10), reading.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        seen.push(comment_of(event).id);
    }
    drop(reading);
    drop(a); // kill -9 of the reader's replica
    let mut resumed = b
        .client()
        .await
        .subscribe_comments(pb::SubscribeCommentsRequest {
            article_id: "resume".to_owned(),
            after_comment_id: seen.last().unwrap().clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let acknowledged = writing.await.unwrap();
    while seen.len() < acknowledged.len() {
        let event = tokio::time::timeout(Duration::from_secs(10), resumed.next())
            .await
            .expect("the rest arrives")
            .unwrap()
            .unwrap();
        seen.push(comment_of(event).id);
    }
    assert_eq!(seen, acknowledged, "every comment once, in order");
}
