//! Cold start, warm latency and peak memory of built Lambda bootstraps, measured against a
//! minimal Lambda Runtime API served here on 127.0.0.1 (the protocol Lambda speaks to a
//! `provided.al2023` bootstrap: GET .../invocation/next, POST .../invocation/{id}/response).
//!
//!   coldstart NAME BOOTSTRAP EVENT_FILE [COLD_RUNS] [WARM_INVOCATIONS]
//!
//! For each of COLD_RUNS fresh processes: exec → first GET /next (init: runtime, config, SDK
//! clients) and exec → first response to EVENT_FILE (init plus the first invocation, whose
//! AWS calls go wherever AWS_ENDPOINT_URL points). Then, in one process, WARM_INVOCATIONS
//! invocations one after another: event available → response, p50/p99; and the process's
//! peak RSS (VmHWM). Prints one JSON line. The bootstrap inherits this process's environment.

// A benchmark fails loudly, like a test.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::convert::Infallible;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http_body_util::{BodyExt as _, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, Mutex};

/// What the Runtime API saw, with when.
#[derive(Debug)]
enum Seen {
    /// A GET /next arrived (the runtime is ready for an event).
    Next(Instant),
    Response(Instant),
    Error(String),
}

struct RuntimeApi {
    events: Mutex<mpsc::Receiver<(String, Bytes)>>,
    seen: mpsc::UnboundedSender<Seen>,
}

async fn serve(api: Arc<RuntimeApi>, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = request.uri().path().to_owned();
    let reply = |status: u16, body: Bytes| {
        Response::builder()
            .status(status)
            .body(Full::new(body))
            .unwrap()
    };
    if path.ends_with("/invocation/next") {
        let _ = api.seen.send(Seen::Next(Instant::now()));
        let Some((id, event)) = api.events.lock().await.recv().await else {
            return reply(500, Bytes::new());
        };
        let deadline =
            SystemTime::now().duration_since(UNIX_EPOCH).unwrap() + Duration::from_secs(30);
        return Response::builder()
            .status(200)
            .header("Lambda-Runtime-Aws-Request-Id", id)
            .header(
                "Lambda-Runtime-Deadline-Ms",
                deadline.as_millis().to_string(),
            )
            .header(
                "Lambda-Runtime-Invoked-Function-Arn",
                "arn:aws:lambda:us-east-1:000000000000:function:bench",
            )
            .header(
                "Lambda-Runtime-Trace-Id",
                "Root=1-00000000-000000000000000000000000",
            )
            .body(Full::new(event))
            .unwrap();
    }
    let body = request
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    if path.ends_with("/response") {
        let _ = api.seen.send(Seen::Response(Instant::now()));
    } else {
        let text = String::from_utf8_lossy(&body).into_owned();
        let _ = api.seen.send(Seen::Error(format!("{path}: {text}")));
    }
    reply(202, Bytes::new())
}

struct Harness {
    address: String,
    events: mpsc::Sender<(String, Bytes)>,
    seen: mpsc::UnboundedReceiver<Seen>,
    invocation: u64,
}

impl Harness {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let (events, events_rx) = mpsc::channel(1);
        let (seen_tx, seen) = mpsc::unbounded_channel();
        let api = Arc::new(RuntimeApi {
            events: Mutex::new(events_rx),
            seen: seen_tx,
        });
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let api = api.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |r| {
                        let api = api.clone();
                        async move { Ok::<_, Infallible>(serve(api, r).await) }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            address,
            events,
            seen,
            invocation: 0,
        }
    }

    fn spawn(&self, bootstrap: &str) -> Child {
        Command::new(bootstrap)
            .env("AWS_LAMBDA_RUNTIME_API", &self.address)
            .env("AWS_LAMBDA_FUNCTION_NAME", "bench")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_LAMBDA_LOG_LEVEL", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the bootstrap")
    }

    async fn offer(&mut self, event: &Bytes) {
        self.invocation += 1;
        self.events
            .send((format!("req-{}", self.invocation), event.clone()))
            .await
            .unwrap();
    }

    async fn next_seen(&mut self) -> Seen {
        tokio::time::timeout(Duration::from_secs(30), self.seen.recv())
            .await
            .expect("the bootstrap went silent")
            .expect("the runtime API stopped")
    }

    /// Waits for the response to the invocation in flight.
    async fn response(&mut self) -> Instant {
        loop {
            match self.next_seen().await {
                Seen::Response(at) => return at,
                Seen::Error(error) => panic!("the function failed: {error}"),
                Seen::Next(_) => {}
            }
        }
    }
}

fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    percentile(&values, 0.5)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, name, bootstrap, event_file, rest @ ..] = args.as_slice() else {
        eprintln!("usage: coldstart NAME BOOTSTRAP EVENT_FILE [COLD_RUNS] [WARM_INVOCATIONS]");
        std::process::exit(2);
    };
    let cold_runs: usize = rest.first().map_or(20, |n| n.parse().unwrap());
    let warm_invocations: usize = rest.get(1).map_or(1000, |n| n.parse().unwrap());
    let event = Bytes::from(std::fs::read(event_file).expect("read the event"));

    let (mut inits, mut firsts) = (Vec::new(), Vec::new());
    for _ in 0..cold_runs {
        // A fresh Runtime API for each process: a killed process's pending GET /next must
        // not take the next process's event.
        let mut harness = Harness::start().await;
        // The event waits before exec, so the first GET /next is answered at once.
        harness.offer(&event).await;
        let exec = Instant::now();
        let mut child = harness.spawn(bootstrap);
        let init = match harness.next_seen().await {
            Seen::Next(at) => at - exec,
            Seen::Error(error) => panic!("init failed: {error}"),
            Seen::Response(_) => unreachable!("a response before any GET /next"),
        };
        let first = harness.response().await - exec;
        // Let it reach its next GET /next, then kill it.
        let _ = harness.next_seen().await;
        child.kill().unwrap();
        child.wait().unwrap();
        inits.push(millis(init));
        firsts.push(millis(first));
    }

    let mut harness = Harness::start().await;
    let mut child = harness.spawn(bootstrap);
    let mut warm = Vec::with_capacity(warm_invocations);
    for i in 0..=warm_invocations {
        let offered = Instant::now();
        harness.offer(&event).await;
        let at = harness.response().await;
        if i > 0 {
            // The first is the cold one, measured above.
            warm.push(millis(at - offered));
        }
    }
    let _ = harness.next_seen().await;
    let rss_kib = peak_rss_kib(child.id());
    child.kill().unwrap();
    child.wait().unwrap();
    warm.sort_by(f64::total_cmp);

    println!(
        "{}",
        serde_json::json!({
            "function": name,
            "cold_runs": cold_runs,
            "init_ms_median": median(inits.clone()),
            "init_ms_min": inits.iter().copied().fold(f64::INFINITY, f64::min),
            "first_response_ms_median": median(firsts),
            "warm_invocations": warm.len(),
            "warm_p50_ms": percentile(&warm, 0.5),
            "warm_p99_ms": percentile(&warm, 0.99),
            "peak_rss_mib": rss_kib as f64 / 1024.0,
        })
    );
}
