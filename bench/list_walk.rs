//! A full walk of the embedded store's listing: `N` messages (300,000 by default) put in an
//! SQLite file, then read back newest first page by page, as `GET /messages` with `next`
//! does, with every page's time. Prints one line: the walk's total, the first and the deepest
//! page, and the median page.
//!
//!   cargo run --profile runner --example list_walk -- [N] [page size]

// A benchmark fixture fails loudly, like a test.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::time::{Duration, Instant};

use message_pipeline::sqlite::{Durability, SqliteDb, SqliteStore};
use pipeline::domain::{ContentLimit, Message, MessageContent, PageLimit};
use pipeline::ports::MessageStore;

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().map_or(300_000, |a| a.parse().unwrap());
    let page: usize = args.next().map_or(1000, |a| a.parse().unwrap());
    let path = std::env::temp_dir().join(format!("mp-walk-{}.db", uuid::Uuid::new_v4()));
    let store = SqliteStore::new(SqliteDb::open(&path, Durability::Process).unwrap());
    for chunk in 0..n.div_ceil(10_000) {
        let batch: Vec<Message> = (0..10_000.min(n - chunk * 10_000))
            .map(|i| {
                let content = format!("message {chunk}.{i} {}", "x".repeat(80));
                Message::accept(MessageContent::parse(content, ContentLimit::DEFAULT).unwrap())
            })
            .collect();
        store.put_batch(&batch).await.unwrap();
    }

    let limit = PageLimit::parse(&page.to_string()).unwrap();
    let (mut times, mut listed, mut before) = (Vec::new(), 0, None);
    let walk = Instant::now();
    loop {
        let started = Instant::now();
        let page = store.list(limit, before).await.unwrap();
        times.push(started.elapsed());
        listed += page.messages.len();
        match page.next {
            Some(cursor) => before = Some(cursor.before),
            None => break,
        }
    }
    let total = walk.elapsed();
    assert_eq!(listed, n);
    let (first, deepest) = (times[0], *times.last().unwrap());
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "walk of {n} messages in pages of {page}: {} pages, {:.0} ms in all; first page {:.2} ms, deepest {:.2} ms, median {:.2} ms",
        times.len(),
        ms(total),
        ms(first),
        ms(deepest),
        ms(times[times.len() / 2]),
    );
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}
