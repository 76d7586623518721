//! kill -9 of the stream's leader while writers submit: every acknowledged
//! comment is on every replica exactly once, the stall is measured, and the
//! killed node catches up when it returns.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use crate::{list_all, nats::NatsCluster, replica, submission, wait_for_comments};

const WRITERS: usize = 4;
const PER_WRITER: usize = 150;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_stream_leader_loses_and_duplicates_nothing() {
    let mut cluster = NatsCluster::start(3);
    let replicas = [replica(&cluster), replica(&cluster)];
    let started = Instant::now();
    let acks: Arc<Mutex<Vec<Duration>>> = Arc::default();
    let mut writers = Vec::new();
    for writer in 0..WRITERS {
        let mut client = replicas[writer % 2].client().await;
        let acks = acks.clone();
        writers.push(tokio::spawn(async move {
            let mut acknowledged = BTreeMap::new();
            let mut retries = 0;
            for n in 0..PER_WRITER {
                let text = format!("Writer {writer} comment {n} on the election results.");
                let key = format!("w{writer}-{n}");
                let deadline = Instant::now() + Duration::from_secs(60);
                loop {
                    let mut request = tonic::Request::new(submission(
                        "failover",
                        &format!("writer-{writer}"),
                        &text,
                        &key,
                    ));
                    request.set_timeout(Duration::from_secs(8));
                    match client.submit_comment(request).await {
                        Ok(response) => {
                            let id = response.into_inner().comment.unwrap().id;
                            acknowledged.insert(id, text);
                            acks.lock().unwrap().push(started.elapsed());
                            break;
                        }
                        Err(status) => {
                            assert!(
                                Instant::now() < deadline,
                                "no acknowledgement within 60 s: {status:?}"
                            );
                            retries += 1;
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                }
            }
            (acknowledged, retries)
        }));
    }
    // Let the writers get going, then kill the leader.
    while acks.lock().unwrap().len() < 100 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let leader = cluster
        .stream_leader("COMMENTS")
        .expect("the stream has a leader");
    let killed_at = started.elapsed();
    cluster.kill(leader);
    if std::env::var_os("REPLICAS_SHOW_LOGS").is_some() {
        let since = Instant::now();
        loop {
            let now = cluster.stream_leader("COMMENTS");
            if now.is_some_and(|n| n != leader) || since.elapsed() > Duration::from_secs(40) {
                eprintln!("new leader {now:?} after {:?}", since.elapsed());
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let mut acknowledged = BTreeMap::new();
    let mut retries = 0;
    for writer in writers {
        let (mine, tried) = writer.await.unwrap();
        retries += tried;
        acknowledged.extend(mine);
    }
    assert_eq!(acknowledged.len(), WRITERS * PER_WRITER, "ids are distinct");
    let mut times = acks.lock().unwrap().clone();
    times.sort();
    let stall = times
        .windows(2)
        .filter(|pair| pair[1] >= killed_at)
        .map(|pair| pair[1] - pair[0])
        .max()
        .unwrap_or_default();
    eprintln!(
        "leader kill -9 with {WRITERS} writers: longest gap between acknowledgements after the kill {stall:?}, {retries} retries, {} acknowledged",
        acknowledged.len()
    );
    if std::env::var_os("REPLICAS_SHOW_LOGS").is_some() {
        for server in &replicas {
            eprintln!("{}", server.log());
        }
    }
    assert!(stall < Duration::from_secs(10), "write stall {stall:?}");

    for (index, server) in replicas.iter().enumerate() {
        let comments = wait_for_comments(
            server,
            "failover",
            acknowledged.len(),
            Duration::from_secs(20),
        )
        .await;
        let ids: Vec<&String> = comments.iter().map(|c| &c.id).collect();
        let unique: BTreeSet<&String> = ids.iter().copied().collect();
        assert_eq!(unique.len(), ids.len(), "no comment twice");
        let texts: BTreeSet<&String> = comments.iter().map(|c| &c.text).collect();
        assert_eq!(texts.len(), comments.len(), "no text stored twice");
        for (id, text) in &acknowledged {
            let found = comments.iter().find(|c| &c.id == id);
            assert_eq!(
                found.map(|c| &c.text),
                Some(text),
                "acknowledged {id} is on replica {index}, which lists {} of {}",
                comments.len(),
                acknowledged.len()
            );
        }
        assert_eq!(comments.len(), acknowledged.len());
    }

    // The killed node comes back and catches up.
    let rejoin = Instant::now();
    cluster.restart(leader);
    let others: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
    let target = cluster.stream_last_seq(others[0], "COMMENTS").unwrap();
    loop {
        if cluster.stream_last_seq(leader, "COMMENTS") == Some(target) {
            break;
        }
        assert!(
            rejoin.elapsed() < Duration::from_secs(30),
            "the restarted node did not catch up"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "the killed node rejoined and caught up to sequence {target} in {:?}",
        rejoin.elapsed()
    );
    // And the replicas still serve reads.
    let mut client = replicas[0].client().await;
    assert_eq!(
        list_all(&mut client, "failover").await.len(),
        acknowledged.len()
    );
}
