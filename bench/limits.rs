//! What this machine allows for the runner's durable work, with none of the runner's
//! machinery: the reference bench/limits.sh measures the runner against.
//!
//!   limits http PORT                       a plain hyper server: bearer check, 202 and a
//!                                          small JSON body, nothing stored
//!   limits enqueue PORT DB ordered|random  the same server, and one writer thread that
//!                                          commits every pending insert in one transaction
//!                                          into DB's queue table (the runner's schema, WAL,
//!                                          synchronous=NORMAL), with time-ordered or random
//!                                          message ids; each 202 after its commit
//!   limits fill DB N                       fills DB's queue with N envelopes, as the enqueue
//!                                          function makes them
//!   limits drain DB N ROWS_PER_TX          fills DB's queue with N envelopes (not timed),
//!                                          then moves them to the messages table ROWS_PER_TX
//!                                          a transaction, each body parsed as the consumer
//!                                          does; prints messages/s
//!
//! DB is a database the runner made (its schema); everything binds 127.0.0.1.

// A measuring tool: any failure ends the run loudly.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::convert::Infallible;
use std::sync::mpsc;
use std::time::Instant;

use http_body_util::{BodyExt as _, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rusqlite::{params, Connection};
use tokio::sync::oneshot;

const TOKEN: &str = "Bearer limits";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize| args.get(i).cloned().unwrap_or_else(|| usage());
    match arg(1).as_str() {
        "http" => serve(arg(2), None),
        "enqueue" => {
            let ordered = match arg(4).as_str() {
                "ordered" => true,
                "random" => false,
                _ => usage(),
            };
            serve(arg(2), Some(spawn_writer(open(&arg(3)), ordered)));
        }
        "fill" => fill(
            &mut open(&arg(2)),
            arg(3).parse().unwrap_or_else(|_| usage()),
        ),
        "drain" => drain(
            &arg(2),
            arg(3).parse().unwrap_or_else(|_| usage()),
            arg(4).parse().unwrap_or_else(|_| usage()),
        ),
        _ => usage(),
    }
}

fn usage() -> ! {
    eprintln!("usage: limits http PORT | limits enqueue PORT DB ordered|random | limits fill DB N | limits drain DB N ROWS_PER_TX");
    std::process::exit(2)
}

fn open(path: &str) -> Connection {
    let conn = Connection::open(path).expect("open the database");
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.pragma_update(None, "synchronous", "NORMAL").unwrap();
    conn
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

type Pending = (String, oneshot::Sender<()>);

/// The group commit: every send waiting when the writer is free goes into one transaction.
fn spawn_writer(mut conn: Connection, ordered: bool) -> mpsc::Sender<Pending> {
    let (sends, pending) = mpsc::channel::<Pending>();
    std::thread::spawn(move || {
        while let Ok(first) = pending.recv() {
            let mut group = vec![first];
            group.extend(pending.try_iter().take(1023));
            let now = now_ms();
            let tx = conn.transaction().unwrap();
            {
                let mut insert = tx
                    .prepare_cached("INSERT INTO queue (message_id, body, sent_at_ms, visible_at_ms) VALUES (?1, ?2, ?3, ?3)")
                    .unwrap();
                for (body, _) in &group {
                    let id = if ordered {
                        uuid::Uuid::now_v7()
                    } else {
                        uuid::Uuid::new_v4()
                    };
                    insert.execute(params![id.to_string(), body, now]).unwrap();
                }
            }
            tx.commit().unwrap();
            for (_, done) in group {
                let _ = done.send(());
            }
        }
    });
    sends
}

fn serve(port: String, writer: Option<mpsc::Sender<Pending>>) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}"))
            .await
            .unwrap();
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let writer = writer.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request| answer(request, writer.clone()));
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
}

async fn answer(
    request: hyper::Request<Incoming>,
    writer: Option<mpsc::Sender<Pending>>,
) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
    let respond = |status: u16, body: String| {
        Ok(hyper::Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .unwrap())
    };
    let authorized = request
        .headers()
        .get("authorization")
        .is_some_and(|v| v.as_bytes() == TOKEN.as_bytes());
    if !authorized {
        return respond(401, r#"{"error":"a bearer token is required"}"#.into());
    }
    let body = request.into_body().collect().await.map(|b| b.to_bytes());
    let Some(content) = body.ok().and_then(|b| {
        serde_json::from_slice::<serde_json::Value>(&b)
            .ok()?
            .get("content")?
            .as_str()
            .map(str::to_owned)
    }) else {
        return respond(400, r#"{"error":"content is required"}"#.into());
    };
    let job = uuid::Uuid::now_v7();
    if let Some(writer) = writer {
        let envelope = serde_json::json!({ "v": 1, "job_id": job.to_string(), "content": content })
            .to_string();
        let (done, committed) = oneshot::channel();
        if writer.send((envelope, done)).is_err() || committed.await.is_err() {
            return respond(503, r#"{"error":"the writer stopped"}"#.into());
        }
    }
    respond(
        202,
        format!(r#"{{"message":"Message enqueued","job_id":"{job}"}}"#),
    )
}

/// Queues `n` envelopes, visible now, in one transaction.
fn fill(conn: &mut Connection, n: usize) {
    let now = now_ms();
    let tx = conn.transaction().unwrap();
    {
        let mut insert = tx
            .prepare("INSERT INTO queue (message_id, body, sent_at_ms, visible_at_ms) VALUES (?1, ?2, ?3, ?3)")
            .unwrap();
        for i in 0..n {
            let body = serde_json::json!({ "v": 1, "job_id": uuid::Uuid::now_v7().to_string(), "content": format!("Hello from wrk! {i}") });
            insert
                .execute(params![
                    uuid::Uuid::now_v7().to_string(),
                    body.to_string(),
                    now
                ])
                .unwrap();
        }
    }
    tx.commit().unwrap();
}

fn drain(path: &str, n: usize, per_tx: usize) {
    let mut conn = open(path);
    fill(&mut conn, n);

    let started = Instant::now();
    let mut moved = 0;
    loop {
        let tx = conn.transaction().unwrap();
        let rows: Vec<(i64, String)> = tx
            .prepare_cached("SELECT seq, body FROM queue WHERE visible_at_ms <= ?1 ORDER BY visible_at_ms, seq LIMIT ?2")
            .unwrap()
            .query_map(params![now_ms(), per_tx as i64], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        if rows.is_empty() {
            break;
        }
        {
            let mut store = tx
                .prepare_cached("INSERT INTO messages (id, content) VALUES (?1, ?2) ON CONFLICT (id) DO NOTHING")
                .unwrap();
            let mut delete = tx
                .prepare_cached("DELETE FROM queue WHERE seq = ?1")
                .unwrap();
            for (seq, body) in &rows {
                let envelope: serde_json::Value = serde_json::from_str(body).unwrap();
                store
                    .execute(params![
                        envelope["job_id"].as_str(),
                        envelope["content"].as_str()
                    ])
                    .unwrap();
                delete.execute([seq]).unwrap();
            }
        }
        tx.commit().unwrap();
        moved += rows.len();
    }
    let seconds = started.elapsed().as_secs_f64();
    println!("{:.0} {seconds:.2} {moved}", moved as f64 / seconds);
}
