//! The conformance suite every [`CommentLog`] must pass, as generic
//! functions over a way to open the log in a folder, and the
//! [`conformance_suite!`] macro that turns them into tests for one log.
//! (The replicated log runs the same suite against its own server.)

use std::{collections::BTreeSet, path::Path, sync::Arc, time::SystemTime};

use super::{Append, Appended, CommentLog, Event, LogError, SledLog, Submitted, comment_key};
use crate::domain::{ArticleId, AuthorName, ClientId, CommentText, Decision, Verdict};

/// A distinct small event.
pub fn event(n: usize) -> Event {
    Event::TermsRemoved {
        texts: vec![format!("term {n}")],
        actor: "conformance".to_owned(),
        note: String::new(),
        time: SystemTime::UNIX_EPOCH,
    }
}

pub fn submission(text: &str) -> Event {
    Event::Submitted(Submitted {
        article_id: ArticleId::parse("conformance").unwrap(),
        author_name: Some(AuthorName::parse("Reader").unwrap()),
        text: Some(CommentText::parse(text, 5000).unwrap()),
        parent_id: None,
        client_id: ClientId::parse("reader").unwrap(),
        time: SystemTime::UNIX_EPOCH,
        verdict: Verdict::from_reasons(Vec::new(), None),
        fingerprint: 7,
    })
}

fn positions(appended: &[Appended]) -> Vec<u64> {
    appended.iter().map(|a| a.position()).collect()
}

pub async fn positions_are_ordered<L: CommentLog>(log: L) {
    let first = positions(&log.append(vec![Append::new(event(1))]).await.unwrap());
    let batch = positions(
        &log.append((2..5).map(|n| Append::new(event(n))).collect())
            .await
            .unwrap(),
    );
    assert!(batch[0] > first[0], "{first:?} then {batch:?}");
    assert_eq!(
        batch,
        vec![batch[0], batch[0] + 1, batch[0] + 2],
        "a batch is consecutive"
    );
    assert_eq!(*log.committed().borrow(), batch[2]);
}

pub async fn reads_after_a_position<L: CommentLog>(log: L) {
    let written = positions(
        &log.append((0..10).map(|n| Append::new(event(n))).collect())
            .await
            .unwrap(),
    );
    let all = log.read_after(0, 100).unwrap();
    assert_eq!(all.iter().map(|(p, _)| *p).collect::<Vec<_>>(), written);
    assert_eq!(all[3].1, event(3));
    let two = log.read_after(written[4], 2).unwrap();
    assert_eq!(
        two.iter().map(|(p, _)| *p).collect::<Vec<_>>(),
        written[5..7].to_vec()
    );
    assert!(log.read_after(written[9], 10).unwrap().is_empty());
    assert_eq!(log.get(written[2]).unwrap(), Some(event(2)));
    assert_eq!(log.get(written[9] + 1000).unwrap(), None);
}

pub async fn a_duplicate_append_returns_the_first_position<L: CommentLog>(log: L) {
    let first = log
        .append(vec![Append::new(event(1)).dedup("key-1".to_owned())])
        .await
        .unwrap();
    let again = log
        .append(vec![Append::new(event(1)).dedup("key-1".to_owned())])
        .await
        .unwrap();
    let Appended::New(position) = first[0] else {
        panic!("{first:?}")
    };
    assert_eq!(again, vec![Appended::Duplicate(position)]);
    assert_eq!(log.find_duplicate("key-1").unwrap(), Some(position));
    assert_eq!(log.find_duplicate("key-2").unwrap(), None);
    let other = log
        .append(vec![Append::new(event(2)).dedup("key-2".to_owned())])
        .await
        .unwrap();
    assert!(matches!(other[0], Appended::New(p) if p > position));
    assert_eq!(
        log.read_after(0, 10).unwrap().len(),
        2,
        "the duplicate took no position"
    );
}

pub async fn conditional_appends_under_contention<L: CommentLog>(log: L) {
    let log = Arc::new(log);
    let racers: Vec<_> = (0..16)
        .map(|n| {
            let log = log.clone();
            tokio::spawn(async move {
                log.append(vec![
                    Append::new(event(n)).expecting("comment/1".to_owned(), None),
                ])
                .await
            })
        })
        .collect();
    let mut won = Vec::new();
    for racer in racers {
        match racer.await.unwrap() {
            Ok(appended) => won.push(appended[0].position()),
            Err(LogError::Conflict { key }) => assert_eq!(key, "comment/1"),
            Err(error) => panic!("{error}"),
        }
    }
    assert_eq!(won.len(), 1, "exactly one of 16 racers appends");
    let next = log
        .append(vec![
            Append::new(event(99)).expecting("comment/1".to_owned(), Some(won[0])),
        ])
        .await
        .unwrap();
    assert!(next[0].position() > won[0]);
    // A batch with one failing condition appends nothing.
    let before = *log.committed().borrow();
    let failed = log
        .append(vec![
            Append::new(event(100)),
            Append::new(event(101)).expecting("comment/1".to_owned(), None),
        ])
        .await;
    assert!(
        matches!(failed, Err(LogError::Conflict { .. })),
        "{failed:?}"
    );
    assert_eq!(*log.committed().borrow(), before);
    assert_eq!(log.read_after(before, 10).unwrap(), vec![]);
}

pub async fn concurrent_appends_all_land_once<L: CommentLog>(log: L) {
    let log = Arc::new(log);
    let writers: Vec<_> = (0..8)
        .map(|writer| {
            let log = log.clone();
            tokio::spawn(async move {
                let mut mine = Vec::new();
                for n in 0..50 {
                    let appended = log
                        .append(vec![Append::new(event(writer * 1000 + n))])
                        .await
                        .unwrap();
                    mine.push(appended[0].position());
                }
                mine
            })
        })
        .collect();
    let mut acknowledged = BTreeSet::new();
    for writer in writers {
        for position in writer.await.unwrap() {
            assert!(
                acknowledged.insert(position),
                "position {position} given twice"
            );
        }
    }
    let read: BTreeSet<u64> = log
        .read_after(0, 1000)
        .unwrap()
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    assert_eq!(read, acknowledged);
}

pub async fn an_erased_text_is_gone<L: CommentLog>(log: L) {
    let written = log
        .append(vec![Append::new(submission("Text to take down."))])
        .await
        .unwrap()[0]
        .position();
    log.append(vec![
        Append::new(event(1))
            .expecting(comment_key(crate::domain::CommentId::new(written)), None)
            .erasing(written),
    ])
    .await
    .unwrap();
    let Some(Event::Submitted(erased)) = log.get(written).unwrap() else {
        panic!("the submission is still there")
    };
    assert_eq!(erased.text, None);
    assert_eq!(erased.author_name, None);
    assert_eq!(
        erased.verdict.decision,
        Decision::Approved,
        "the audit stays"
    );
}

/// Appends, closes, reopens: everything acknowledged is there and new
/// positions follow the old ones.
pub async fn reopens_with_everything_acknowledged<L, F>(dir: &Path, open: F)
where
    L: CommentLog,
    F: Fn(&Path) -> L,
{
    let log = open(dir);
    let written = positions(
        &log.append((0..20).map(|n| Append::new(event(n))).collect())
            .await
            .unwrap(),
    );
    log.close().await.unwrap();
    drop(log);
    let log = open(dir);
    assert_eq!(
        log.read_after(0, 100)
            .unwrap()
            .iter()
            .map(|(p, _)| *p)
            .collect::<Vec<_>>(),
        written
    );
    let next = log.append(vec![Append::new(event(20))]).await.unwrap();
    assert!(next[0].position() > written[19]);
    assert!(matches!(
        log.append(vec![]).await,
        Ok(ref empty) if empty.is_empty()
    ));
}

/// One test per suite function, for the log `open` makes in a folder.
#[macro_export]
macro_rules! conformance_suite {
    ($open:expr) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn positions_are_ordered() {
            let dir = tempfile::TempDir::new().unwrap();
            $crate::store::conformance::positions_are_ordered($open(dir.path())).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn reads_after_a_position() {
            let dir = tempfile::TempDir::new().unwrap();
            $crate::store::conformance::reads_after_a_position($open(dir.path())).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn a_duplicate_append_returns_the_first_position() {
            let dir = tempfile::TempDir::new().unwrap();
            $crate::store::conformance::a_duplicate_append_returns_the_first_position($open(
                dir.path(),
            ))
            .await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn conditional_appends_under_contention() {
            let dir = tempfile::TempDir::new().unwrap();
            $crate::store::conformance::conditional_appends_under_contention($open(dir.path()))
                .await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn concurrent_appends_all_land_once() {
            let dir = tempfile::TempDir::new().unwrap();
            $crate::store::conformance::concurrent_appends_all_land_once($open(dir.path())).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn an_erased_text_is_gone() {
            let dir = tempfile::TempDir::new().unwrap();
            $crate::store::conformance::an_erased_text_is_gone($open(dir.path())).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn reopens_with_everything_acknowledged() {
            let dir = tempfile::TempDir::new().unwrap();
            $crate::store::conformance::reopens_with_everything_acknowledged(dir.path(), $open)
                .await;
        }
    };
}

/// The sled log in `dir`, waiting for a previous handle's writer thread to
/// let go of the folder.
pub fn open_sled(dir: &Path) -> SledLog {
    for _ in 0..100 {
        match sled::Config::new().path(dir).open() {
            Ok(db) => {
                return SledLog::open(&db, dir, std::time::Duration::from_secs(3600)).unwrap();
            }
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(20)),
        }
    }
    panic!("the sled folder stayed locked")
}

mod sled_log {
    use super::open_sled;

    crate::conformance_suite!(open_sled);

    /// Every acknowledgement follows an `fdatasync` of sled's data file: one
    /// sync per group, and every group synced.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_group_is_synced_before_it_is_acknowledged() {
        use std::sync::atomic::Ordering;

        use crate::store::CommentLog;
        let dir = tempfile::TempDir::new().unwrap();
        let log = std::sync::Arc::new(open_sled(dir.path()));
        let writers: Vec<_> = (0..8)
            .map(|writer| {
                let log = log.clone();
                tokio::spawn(async move {
                    for n in 0..25 {
                        let appended = log
                            .append(vec![crate::store::Append::new(super::event(
                                writer * 100 + n,
                            ))])
                            .await
                            .unwrap();
                        // Acknowledged: at least as many syncs as groups now.
                        let stats = log.stats();
                        assert!(
                            stats.syncs.load(Ordering::SeqCst)
                                >= stats.groups.load(Ordering::SeqCst)
                        );
                        assert!(*log.committed().borrow() >= appended[0].position());
                    }
                })
            })
            .collect();
        for writer in writers {
            writer.await.unwrap();
        }
        let stats = log.stats();
        let groups = stats.groups.load(Ordering::SeqCst);
        assert!(
            (1..=200).contains(&groups),
            "{groups} groups for 200 appends"
        );
        assert_eq!(stats.syncs.load(Ordering::SeqCst), groups);
    }

    /// kill -9 while appending: every acknowledged position is there after
    /// reopening. The test runs itself as the child that is killed.
    #[test]
    fn acknowledged_appends_survive_kill_9() {
        use std::io::{BufRead, BufReader};

        use crate::store::CommentLog;
        const CHILD: &str = "COMMENTD_CONFORMANCE_KILL9_DIR";
        if let Ok(dir) = std::env::var(CHILD) {
            let runtime = tokio::runtime::Runtime::new().unwrap();
            runtime.block_on(async {
                let log = std::sync::Arc::new(open_sled(std::path::Path::new(&dir)));
                let writers: Vec<_> = (0..4)
                    .map(|writer| {
                        let log = log.clone();
                        tokio::spawn(async move {
                            for n in 0.. {
                                let appended = log
                                    .append(vec![crate::store::Append::new(super::event(
                                        writer * 1_000_000 + n,
                                    ))])
                                    .await
                                    .unwrap();
                                println!("ack {}", appended[0].position());
                            }
                        })
                    })
                    .collect();
                for writer in writers {
                    let _ = writer.await;
                }
            });
            return;
        }
        let dir = tempfile::TempDir::new().unwrap();
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "store::conformance::sled_log::acknowledged_appends_survive_kill_9",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD, dir.path())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut acknowledged = Vec::new();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        while acknowledged.len() < 500 {
            let line = lines.next().expect("the child acknowledges").unwrap();
            if let Some(position) = line.strip_prefix("ack ") {
                acknowledged.push(position.parse::<u64>().unwrap());
            }
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let log = open_sled(dir.path());
        let stored: std::collections::BTreeSet<u64> = log
            .read_after(0, 1_000_000)
            .unwrap()
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        let lost: Vec<u64> = acknowledged
            .iter()
            .filter(|p| !stored.contains(p))
            .copied()
            .collect();
        assert!(lost.is_empty(), "acknowledged but lost: {lost:?}");
    }

    /// Duplicate records expire after the window and are swept from disk.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn expired_duplicate_records_are_swept() {
        use crate::store::CommentLog;
        let dir = tempfile::TempDir::new().unwrap();
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        let log = crate::store::SledLog::open(&db, dir.path(), std::time::Duration::from_secs(1))
            .unwrap();
        let first = log
            .append(vec![
                crate::store::Append::new(super::event(1)).dedup("retry-me".to_owned()),
            ])
            .await
            .unwrap()[0]
            .position();
        assert_eq!(log.find_duplicate("retry-me").unwrap(), Some(first));
        let tree = db.open_tree("log.v2").unwrap();
        let records = || tree.scan_prefix(b"d").count() + tree.scan_prefix(b"t").count();
        assert_eq!(records(), 2);
        // Past the window (whole seconds) and a sweep (every second).
        let mut swept = false;
        for _ in 0..60 {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            if records() == 0 {
                swept = true;
                break;
            }
        }
        assert!(swept, "the expired record is still on disk");
        assert_eq!(log.find_duplicate("retry-me").unwrap(), None);
        let again = log
            .append(vec![
                crate::store::Append::new(super::event(1)).dedup("retry-me".to_owned()),
            ])
            .await
            .unwrap();
        assert!(matches!(again[0], crate::store::Appended::New(p) if p > first));
    }

    /// Long comments in a non-Latin script fill pages that sled writes to
    /// files of their own (`blobs/`); each is synced before the append that
    /// made it is acknowledged.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn blob_files_are_synced_too() {
        use std::sync::atomic::Ordering;

        use crate::store::CommentLog;
        let dir = tempfile::TempDir::new().unwrap();
        let log = open_sled(dir.path());
        let text = "漢".repeat(4990);
        for _ in 0..60 {
            log.append(vec![crate::store::Append::new(super::submission(&text))])
                .await
                .unwrap();
        }
        let blobs = std::fs::read_dir(dir.path().join("blobs"))
            .map(|entries| entries.count())
            .unwrap_or(0);
        assert!(
            blobs > 0,
            "sled wrote no blob file: the test no longer tests it"
        );
        assert!(log.stats().blob_syncs.load(Ordering::SeqCst) >= blobs as u64);
    }
}
