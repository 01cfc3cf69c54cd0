//! A small load generator for bench/run.sh: exact message counts, which wrk cannot do.
//!
//!   loadgen post ENDPOINT TOTAL CLIENTS  POSTs TOTAL messages to ENDPOINT (a full URL, such as
//!                                        http://127.0.0.1:3000/messages) from CLIENTS
//!                                        keep-alive clients
//!   loadgen visible URL SAMPLES          POSTs one message at a time to URL/messages on an idle
//!                                        runner and times until GET /messages/{id} finds it
//!   loadgen steady ENDPOINT TOTAL RATE   POSTs TOTAL messages at RATE a second from one client:
//!                                        a light, steady load, where batching windows matter
//!   loadgen batch URL TOTAL SIZE KEYED   POSTs TOTAL messages SIZE a request to URL/messages/batch
//!                                        (URL/messages when SIZE is 1) from 4 clients, each
//!                                        request with a fresh Idempotency-Key when KEYED is 1
//!
//! Prints one JSON line of results.

use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let number = |i: usize| -> usize {
        args.get(i)
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| usage())
    };
    match (args.get(1).map(String::as_str), args.get(2)) {
        (Some("post"), Some(url)) => post(url, number(3), number(4)),
        (Some("visible"), Some(url)) => visible(url, number(3)),
        (Some("steady"), Some(url)) => steady(url, number(3), number(4)),
        (Some("batch"), Some(url)) => batch(url, number(3), number(4), number(5) == 1),
        _ => usage(),
    }
}

fn usage() -> ! {
    eprintln!(
        "usage: loadgen post ENDPOINT TOTAL CLIENTS | loadgen visible URL SAMPLES | loadgen steady ENDPOINT TOTAL RATE | loadgen batch URL TOTAL SIZE KEYED"
    );
    std::process::exit(2)
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

/// The job id of a 202, or `None`.
fn post_one(agent: &ureq::Agent, endpoint: &str, content: &str) -> Option<String> {
    let body = format!(r#"{{"content":"{content}"}}"#);
    let mut response = agent
        .post(endpoint)
        .header("Content-Type", "application/json")
        .send(&body)
        .ok()?;
    if response.status() != 202 {
        return None;
    }
    let text = response.body_mut().read_to_string().ok()?;
    // Both this API and the tutorial's answer a job id; take it without a JSON parser.
    let after_key = &text[text.find("\"job_id\"")? + 8..];
    let value = after_key.split('"').nth(1)?;
    Some(value.to_owned())
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index].as_secs_f64() * 1000.0
}

fn post(url: &str, total: usize, clients: usize) {
    let started = Instant::now();
    let workers: Vec<_> = (0..clients)
        .map(|client| {
            let url = url.to_owned();
            let share = total / clients + usize::from(client < total % clients);
            std::thread::spawn(move || {
                let agent = agent();
                let mut latencies = Vec::with_capacity(share);
                let mut errors = 0usize;
                for i in 0..share {
                    let sent = Instant::now();
                    match post_one(&agent, &url, &format!("bench client {client} message {i}")) {
                        Some(_) => latencies.push(sent.elapsed()),
                        None => errors += 1,
                    }
                }
                (latencies, errors)
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(total);
    let mut errors = 0;
    for worker in workers {
        let (l, e) = worker.join().unwrap_or_default();
        latencies.extend(l);
        errors += e;
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    println!(
        r#"{{"accepted":{},"errors":{},"seconds":{:.3},"per_second":{:.0},"p50_ms":{:.2},"p99_ms":{:.2}}}"#,
        latencies.len(),
        errors,
        elapsed,
        latencies.len() as f64 / elapsed,
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
    );
}

/// Messages accepted by one batch request (or one single POST), `None` on an error status.
fn post_batch(
    agent: &ureq::Agent,
    url: &str,
    contents: &[String],
    key: Option<&str>,
) -> Option<usize> {
    let (endpoint, body) = if let [only] = contents {
        (
            format!("{url}/messages"),
            format!(r#"{{"content":"{only}"}}"#),
        )
    } else {
        let messages: Vec<String> = contents
            .iter()
            .map(|c| format!(r#"{{"content":"{c}"}}"#))
            .collect();
        (
            format!("{url}/messages/batch"),
            format!(r#"{{"messages":[{}]}}"#, messages.join(",")),
        )
    };
    let mut request = agent
        .post(&endpoint)
        .header("Content-Type", "application/json");
    if let Some(key) = key {
        request = request.header("Idempotency-Key", format!("\"{key}\""));
    }
    let mut response = request.send(&body).ok()?;
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().ok()?;
    match status {
        202 if contents.len() == 1 => Some(1),
        202 | 207 => Some(text.matches("\"job_id\"").count()),
        _ => None,
    }
}

fn batch(url: &str, total: usize, size: usize, keyed: bool) {
    let clients = 4;
    let started = Instant::now();
    let run = std::process::id();
    let workers: Vec<_> = (0..clients)
        .map(|client| {
            let url = url.to_owned();
            let share = total / clients + usize::from(client < total % clients);
            std::thread::spawn(move || {
                let agent = agent();
                let (mut requests, mut accepted, mut errors) = (0usize, 0usize, 0usize);
                let contents: Vec<String> = (0..share)
                    .map(|i| format!("batch client {client} message {i}"))
                    .collect();
                for chunk in contents.chunks(size.max(1)) {
                    requests += 1;
                    let key = keyed.then(|| format!("bench-{run}-{client}-{requests}"));
                    match post_batch(&agent, &url, chunk, key.as_deref()) {
                        Some(n) => accepted += n,
                        None => errors += 1,
                    }
                }
                (requests, accepted, errors)
            })
        })
        .collect();
    let (mut requests, mut accepted, mut errors) = (0, 0, 0);
    for worker in workers {
        let (r, a, e) = worker.join().unwrap_or_default();
        requests += r;
        accepted += a;
        errors += e;
    }
    println!(
        r#"{{"size":{size},"keyed":{keyed},"requests":{requests},"accepted":{accepted},"errors":{errors},"seconds":{:.3}}}"#,
        started.elapsed().as_secs_f64()
    );
}

fn steady(url: &str, total: usize, rate: usize) {
    let agent = agent();
    let interval = Duration::from_secs_f64(1.0 / rate.max(1) as f64);
    let started = Instant::now();
    let mut accepted = 0usize;
    for i in 0..total {
        let due = started + interval * i as u32;
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        if post_one(&agent, url, &format!("steady message {i}")).is_some() {
            accepted += 1;
        }
    }
    println!(
        r#"{{"accepted":{accepted},"rate":{rate},"seconds":{:.3}}}"#,
        started.elapsed().as_secs_f64()
    );
}

fn visible(url: &str, samples: usize) {
    let agent = agent();
    let mut delays = Vec::with_capacity(samples);
    for i in 0..samples {
        let sent = Instant::now();
        let Some(job_id) = post_one(
            &agent,
            &format!("{url}/messages"),
            &format!("visibility probe {i}"),
        ) else {
            continue;
        };
        loop {
            let found = agent
                .get(format!("{url}/messages/{job_id}"))
                .call()
                .map(|r| r.status() == 200)
                .unwrap_or(false);
            if found {
                delays.push(sent.elapsed());
                break;
            }
            if sent.elapsed() > Duration::from_secs(30) {
                break;
            }
        }
        // Idle between probes, so each one meets an idle worker.
        std::thread::sleep(Duration::from_millis(20));
    }
    delays.sort_unstable();
    println!(
        r#"{{"samples":{},"p50_ms":{:.2},"p99_ms":{:.2},"max_ms":{:.2}}}"#,
        delays.len(),
        percentile(&delays, 0.50),
        percentile(&delays, 0.99),
        delays.last().map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0),
    );
}
