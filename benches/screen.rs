//! Screening cost alone: the content pipeline (normalisation, rustrict, the
//! three learned models) on one thread, no gRPC, no store. Reports the median
//! time per comment over several rounds of a fixed set of news comments.
//!
//! `cargo bench --bench screen -- [--rounds N] [--seconds S]`

mod common;

use std::{sync::Arc, time::Instant};

use commentd::{
    domain::{AuthorName, CommentText},
    screening::{Models, Pipeline, ProfanityPolicy, SpamPolicy, TermList, ToxicityPolicy},
};
use common::arg;

/// News-style comments of the lengths readers write (one line to a few
/// paragraphs), with a link and a mention among them.
const COMMENTS: &[&str] = &[
    "The council's decision to delay the bus lane until after the spring consultation makes \
     sense to me. Residents on Hill Road raised fair points about deliveries, and a weekday \
     trial would show whether queues really get worse before the city commits the full budget.",
    "Great reporting, thank you.",
    "Does anyone know whether the new schedule applies to the weekend services as well?",
    "I disagree with the columnist. The figures in the second chart show spending rose in real \
     terms every year since 2019, so calling it a cut is misleading. The full report is at \
     https://www.ons.gov.uk/economy/governmentpublicsectorandtaxes and worth reading before \
     anyone takes a side.",
    "@maria_k the article says the vote is on Thursday, not Tuesday.",
    "My grandmother lived on that street for forty years. It is sad to see the bakery go, but \
     the rents have tripled and nobody can run a small shop on those margins any more. The \
     landlords and the council both share the blame here, and I hope the new development \
     keeps at least some units affordable for local businesses rather than another chain.",
    "This is the third time this month the trains have been cancelled. Absolutely ridiculous!",
    "Interesting piece, though it would have helped to hear from the teachers themselves.",
];

fn main() {
    let rounds = arg("--rounds", 7);
    let seconds = arg("--seconds", 2);
    let pipeline = Pipeline::new(
        ProfanityPolicy::default(),
        SpamPolicy::default(),
        ToxicityPolicy::default(),
        Arc::new(TermList::new(&[])),
        Models::embedded().expect("embedded models load"),
    );
    let author = AuthorName::parse("Ana Ribeiro").expect("valid name");
    let texts: Vec<CommentText> = COMMENTS
        .iter()
        .map(|text| CommentText::parse(text, CommentText::DEFAULT_MAX_CHARS).expect("valid text"))
        .collect();
    let mut per_comment = Vec::new();
    for _ in 0..rounds {
        let started = Instant::now();
        let mut screened = 0u64;
        while started.elapsed().as_secs() < seconds {
            for text in &texts {
                std::hint::black_box(pipeline.screen(Some(&author), text));
            }
            screened += texts.len() as u64;
        }
        per_comment.push(started.elapsed().as_secs_f64() * 1e6 / screened as f64);
    }
    per_comment.sort_by(f64::total_cmp);
    println!(
        "screening: median {:.1} µs per comment over {rounds} rounds of {seconds} s \
         (min {:.1}, max {:.1}; {} comments, {} bytes on average)",
        per_comment[per_comment.len() / 2],
        per_comment[0],
        per_comment[per_comment.len() - 1],
        COMMENTS.len(),
        COMMENTS.iter().map(|c| c.len()).sum::<usize>() / COMMENTS.len(),
    );
}
