//! The event the store benchmarks append (`#[path]`-included by them).

use std::time::SystemTime;

use commentd::{
    domain::{ArticleId, AuthorName, ClientId, CommentText, Decision, Verdict},
    store::{Event, Submitted},
};

/// 260 characters, as in the gRPC benchmark.
pub const TEXT: &str = "The council's budget report leaves out the cost of the new bus depot, \
which the transport committee estimated at four million last spring. Could the paper ask \
why that figure is missing, and whether the depot is still planned for next year at all?";

/// An approved comment of `worker` (8 articles, a client each), its
/// `count`th.
pub fn approved_submission(worker: usize, count: u64) -> Event {
    Event::Submitted(Submitted {
        article_id: ArticleId::parse(&format!("bench/{}", worker % 8)).unwrap(),
        author_name: Some(AuthorName::parse("Bench").unwrap()),
        text: Some(CommentText::parse(TEXT, 5000).unwrap()),
        parent_id: None,
        client_id: ClientId::parse(&format!("bench-{worker}")).unwrap(),
        time: SystemTime::now(),
        verdict: Verdict {
            decision: Decision::Approved,
            reasons: vec![],
            censored_text: None,
        },
        fingerprint: count,
    })
}
