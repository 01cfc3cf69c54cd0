//! One job's life in one query, on the deployed stack: `pipeline-ctl logs <job> --stack`
//! runs the README's Logs Insights query over the stack's log groups and finds the enqueue
//! function's `queued` and the consumer's `stored`, the latter in the trace the message was
//! sent in (the AWSTraceHeader the enqueue function's send carried).

use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::stack::{call, var};

#[test]
#[ignore = "needs a deployed stack: infra/test.sh"]
fn a_job_s_lines_from_both_functions_come_back_in_one_query_in_one_trace() {
    let (code, accepted) = call("POST", "/messages", r#"{"content": "find my story"}"#);
    assert_eq!(code, 202, "{accepted}");
    let job = accepted["job_id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(60);
    let said = loop {
        let output = Command::new(env!("CARGO_BIN_EXE_pipeline-ctl"))
            .args(["logs", &job, "--stack", &var("STACK_NAME"), "--hours", "1"])
            .output()
            .unwrap();
        let said = String::from_utf8(output.stdout).unwrap();
        if said.contains(&format!("stored job_id={job}")) || Instant::now() > deadline {
            break said;
        }
        std::thread::sleep(Duration::from_secs(1));
    };
    assert!(said.contains(&format!("queued job_id={job}")), "{said}");
    assert!(said.contains(&format!("stored job_id={job}")), "{said}");
    assert!(
        !said.contains("find my story"),
        "content in the logs: {said}"
    );
    // The enqueue invocation's trace root, read off its own `queued` line (the emulator
    // returns whole invocations, others' lines among them), and the consumer's stored line
    // in it.
    let queued = said
        .lines()
        .find(|line| line.contains(&format!("queued job_id={job}")))
        .unwrap();
    let root = queued
        .split("xrayTraceId=\"Root=")
        .nth(1)
        .and_then(|rest| rest.split(';').next())
        .unwrap_or_else(|| panic!("no trace id on the enqueue function's line: {queued}"));
    assert!(
        said.contains(&format!("stored job_id={job} trace_id=\"{root}\"")),
        "the stored line is not in trace {root}: {said}"
    );
}
