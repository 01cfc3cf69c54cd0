//! What a page of `GET /messages` reads from DynamoDB: items and read units, for the
//! per-shard Query limit the store uses ([`shard_query_limit`]) against `limit + 1` from
//! every shard (what it asked before), in one run over the same data. `N` jobs (100,000 by
//! default) are spread over the shards by their ids, as the store writes them, and walked
//! page by page through the store's own merge ([`merge_newest_first`]), each shard answering
//! as DynamoDB does (`min(Limit, what is left)` items, under the 1 MB cap).
//!
//! Read units: eventually consistent, half a unit for each 4 KB a Query returns, at least
//! half a unit a Query; items of a 100-character message are about 250 bytes.
//!
//!   cargo run --profile runner --example list_reads -- [N]

// A benchmark fixture fails loudly, like a test.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use pipeline::adapters::aws::for_benchmarks::{
    merge_newest_first, shard_of, shard_query_limit, ShardPage, SHARDS,
};
use pipeline::domain::{ContentLimit, JobId, Message, MessageContent, PageLimit};

const ITEM_BYTES: usize = 250;

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map_or(100_000, |a| a.parse().unwrap());
    let content = MessageContent::parse("x".repeat(100), ContentLimit::DEFAULT).unwrap();
    let mut shards: Vec<Vec<Message>> = vec![Vec::new(); usize::from(SHARDS)];
    for _ in 0..n {
        let id = JobId::new();
        shards[usize::from(shard_of(id))].push(Message::new(
            id,
            content.clone(),
            Default::default(),
        ));
    }
    println!("| page `limit` | shard Query `Limit` | pages | items read a page | read units a page | messages a page | items read a message returned |");
    println!("|---|---|---|---|---|---|---|");
    for limit in [10, 50, 100, 1000] {
        let policies: [(&str, usize); 2] = [
            ("limit + 1 (before)", limit + 1),
            ("share + 2 (now)", shard_query_limit(limit)),
        ];
        for (name, asked) in policies {
            let (pages, read, units, returned) = walk(&shards, limit, asked);
            println!(
                "| {limit} | {name}: {asked} | {pages} | {:.1} | {:.1} | {:.1} | {:.2} |",
                read as f64 / pages as f64,
                units / pages as f64,
                returned as f64 / pages as f64,
                read as f64 / returned as f64,
            );
        }
    }
}

/// Walks every page; returns pages, items read, read units and messages returned.
fn walk(shards: &[Vec<Message>], limit: usize, asked: usize) -> (usize, usize, f64, usize) {
    let page_limit = PageLimit::parse(&limit.to_string()).unwrap();
    let (mut pages, mut read, mut units, mut returned) = (0, 0, 0.0, 0);
    let mut before: Option<JobId> = None;
    loop {
        let answers: Vec<ShardPage> = shards
            .iter()
            .map(|shard| {
                let end = before.map_or(shard.len(), |b| shard.partition_point(|m| m.id < b));
                let taken = end.min(asked);
                read += taken;
                units += 0.5 * (taken * ITEM_BYTES).div_ceil(4096).max(1) as f64;
                ShardPage {
                    messages: shard[end - taken..end].iter().rev().cloned().collect(),
                    exhausted: taken == end,
                    last_read: shard[end - taken..end].first().map(|m| m.id),
                }
            })
            .collect();
        let page = merge_newest_first(answers, page_limit).unwrap();
        pages += 1;
        returned += page.messages.len();
        match page.next {
            Some(cursor) => before = Some(cursor.before),
            None => return (pages, read, units, returned),
        }
    }
}
