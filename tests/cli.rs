//! `pipeline-ctl` against the local runner: every command, human and `--json` output, the
//! token and URL taken from the runner's token file, and a purge refused without `--yes`.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{data_file, Runner};

fn ctl(runner: &Runner, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pipeline-ctl"))
        .arg("--tokens-file")
        .arg(&runner.tokens_file)
        .args(args)
        .env_remove("PIPELINE_URL")
        .env_remove("PIPELINE_TOKEN")
        .output()
        .unwrap()
}

fn ctl_with_input(runner: &Runner, args: &[&str], input: &str) -> Output {
    use std::io::Write as _;
    let mut child = Command::new(env!("CARGO_BIN_EXE_pipeline-ctl"))
        .arg("--tokens-file")
        .arg(&runner.tokens_file)
        .args(args)
        .env_remove("PIPELINE_URL")
        .env_remove("PIPELINE_TOKEN")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn ok(runner: &Runner, args: &[&str]) -> String {
    let output = ctl(runner, args);
    assert!(
        output.status.success(),
        "pipeline-ctl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn json(runner: &Runner, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    serde_json::from_str(ok(runner, &all).lines().last().unwrap()).unwrap()
}

#[test]
fn pipeline_ctl_sends_follows_and_operates_the_local_runner() {
    let data = data_file();
    let runner = Runner::start_with(
        &data,
        &[
            "--visibility-timeout-secs",
            "1",
            "--max-receive-count",
            "2",
            "--store-faults",
            "poison=POISON",
        ],
    );

    // send prints the job id; status --wait follows it until it is stored.
    let job = ok(&runner, &["send", "hello from the CLI"])
        .trim()
        .to_owned();
    assert_eq!(job.len(), 36, "{job}");
    let status = ok(&runner, &["status", "--wait", &job]);
    assert!(status.starts_with(&format!("{job}: stored")), "{status}");
    assert!(status.contains("hello from the CLI"), "{status}");
    let listed = ok(&runner, &["list"]);
    assert!(
        listed.contains(&job) && listed.contains("hello from the CLI"),
        "{listed}"
    );

    // A poison job is dead-lettered; dlq list shows it and why.
    let poison = json(&runner, &["send", "POISON\u{1b}[2J"])["job_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let dead = json(&runner, &["status", "--wait", &poison]);
    assert_eq!(dead["status"], "dead_lettered", "{dead}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while json(&runner, &["stats"])["dead_letter_queue"]["count"] != 1 {
        assert!(
            Instant::now() < deadline,
            "never reached the dead-letter queue"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let letters = ok(&runner, &["dlq", "list"]);
    assert!(
        letters.contains(&poison) && letters.contains("poison"),
        "{letters}"
    );
    // The escape sequence in its content is shown, not obeyed.
    assert!(
        !letters.contains('\u{1b}') && letters.contains("\\u{1b}"),
        "{letters}"
    );
    let stats = ok(&runner, &["stats"]);
    assert!(stats.contains("dead letters 1"), "{stats}");

    // Purge needs --yes: refused without it, and nothing is deleted.
    let refused = ctl(&runner, &["dlq", "purge"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--yes"));
    assert_eq!(json(&runner, &["stats"])["dead_letter_queue"]["count"], 1);

    // Delete needs --yes too; a job that is not dead-lettered cannot be deleted.
    let refused = ctl(&runner, &["dlq", "delete", &poison]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--yes"));
    assert!(!ctl(&runner, &["dlq", "delete", "--yes", &job])
        .status
        .success());

    // A requeue of a job that is not dead-lettered fails with the API's reason.
    let missing = ctl(&runner, &["dlq", "requeue", &job]);
    assert!(!missing.status.success());
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("not in the dead-letter queue"),
        "{}",
        String::from_utf8_lossy(&missing.stderr)
    );

    // Fixed: requeue-all brings it back under its job id, and it is stored.
    crate::support::agent()
        .delete(format!("{}/_local/faults", runner.url))
        .call()
        .unwrap();
    let requeued = ok(&runner, &["dlq", "requeue-all"]);
    assert!(requeued.contains("requeued 1 dead letter\n"), "{requeued}");
    let stored = json(&runner, &["status", "--wait", &poison]);
    assert_eq!(stored["status"], "stored", "{stored}");

    // And purge with --yes empties it.
    assert!(ok(&runner, &["dlq", "purge", "--yes"]).contains("purged"));
    runner.terminate();
    crate::support::remove_db(&data);
}

#[test]
fn pipeline_ctl_sends_batches_delays_attributes_and_keys() {
    let data = data_file();
    let runner = Runner::start_with(&data, &["--visibility-timeout-secs", "1"]);

    // send-batch: one message per line, one job id per line, in order.
    let file = std::env::temp_dir().join(format!("mp-batch-{}.txt", uuid::Uuid::new_v4()));
    let lines: Vec<String> = (0..150).map(|i| format!("line {i}")).collect();
    std::fs::write(&file, format!("{}\n", lines.join("\n"))).unwrap();
    let printed = ok(
        &runner,
        &[
            "send-batch",
            file.to_str().unwrap(),
            "--attr",
            "source=file",
        ],
    );
    let ids: Vec<&str> = printed.lines().collect();
    assert_eq!(ids.len(), 150, "{printed}");
    let last = ok(&runner, &["status", "--wait", ids[149]]);
    assert!(
        last.contains("stored") && last.contains("line 149"),
        "{last}"
    );
    let stored = json(&runner, &["status", ids[0]]);
    assert_eq!(stored["message"]["attributes"]["source"], "file");
    let _ = std::fs::remove_file(&file);

    // From standard input: a line the API refuses is reported in its place, and the command
    // fails; an empty input is an error too.
    let bad = ctl_with_input(&runner, &["send-batch", "-"], "fine\n\u{FFFF}\n");
    assert!(!bad.status.success());
    let out = String::from_utf8_lossy(&bad.stdout);
    let out: Vec<&str> = out.lines().collect();
    assert_eq!(out.len(), 2, "{out:?}");
    assert!(
        out[1].starts_with("error: ") && out[1].contains("noncharacter"),
        "{out:?}"
    );
    assert!(String::from_utf8_lossy(&bad.stderr).contains("1 of 2 lines were not queued"));
    let empty = ctl_with_input(&runner, &["send-batch", "-"], "");
    assert!(!empty.status.success());

    // Issue 22: a blank line is a refused line in its place, so the output still lines up
    // with the input, and the command fails.
    let blank = ctl_with_input(&runner, &["send-batch", "-"], "first\n\n  \nlast\n");
    assert!(!blank.status.success());
    let out = String::from_utf8_lossy(&blank.stdout);
    let out: Vec<&str> = out.lines().collect();
    assert_eq!(out.len(), 4, "{out:?}");
    assert!(
        !out[0].starts_with("error") && !out[3].starts_with("error"),
        "{out:?}"
    );
    assert!(
        out[1].starts_with("error: ") && out[1].contains("blank"),
        "{out:?}"
    );
    assert!(
        out[2].starts_with("error: ") && out[2].contains("blank"),
        "{out:?}"
    );
    let said = String::from_utf8_lossy(&blank.stderr);
    assert!(said.contains("2 of 4 lines were not queued"), "{said}");
    // A file of blank lines only: each refused, and no request at all.
    let blanks = ctl_with_input(&runner, &["send-batch", "-"], "\n\n");
    assert_eq!(String::from_utf8_lossy(&blanks.stdout).lines().count(), 2);
    assert!(!blanks.status.success());

    // --delay: scheduled, with the time it becomes visible.
    let later = ok(&runner, &["send", "later", "--delay", "30"])
        .trim()
        .to_owned();
    let status = ok(&runner, &["status", &later]);
    assert!(
        status.starts_with(&format!("{later}: scheduled, visible at ")),
        "{status}"
    );

    // --key: the same key and content again is the same job.
    let first = ok(&runner, &["send", "keyed", "--key", "cli-key-1"]);
    let again = ok(&runner, &["send", "keyed", "--key", "cli-key-1"]);
    assert_eq!(first, again);
    let reused = ctl(&runner, &["send", "other", "--key", "cli-key-1"]);
    assert!(!reused.status.success());
    assert!(String::from_utf8_lossy(&reused.stderr).contains("422"));

    runner.terminate();
    crate::support::remove_db(&data);
}

// Issue 22: `list` and `dlq list` cut each line to the terminal's width (COLUMNS where
// standard output is not one); `--full` shows everything.
#[test]
fn pipeline_ctl_cuts_long_lines_unless_full() {
    let data = data_file();
    let runner = Runner::start(&data);
    let long = format!("{}END", "x".repeat(300));
    let job = ok(&runner, &["send", &long]).trim().to_owned();
    ok(&runner, &["status", "--wait", &job]);

    let narrow = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_pipeline-ctl"))
            .arg("--tokens-file")
            .arg(&runner.tokens_file)
            .args(args)
            .env("COLUMNS", "80")
            .env_remove("PIPELINE_URL")
            .env_remove("PIPELINE_TOKEN")
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        String::from_utf8(output.stdout).unwrap()
    };
    let cut = narrow(&["list"]);
    let line = cut.lines().find(|l| l.starts_with(&job)).expect(&cut);
    assert_eq!(line.chars().count(), 80, "{line}");
    assert!(line.ends_with('…'), "{line}");
    let full = narrow(&["list", "--full"]);
    assert!(
        full.lines()
            .any(|l| l.starts_with(&job) && l.ends_with("END")),
        "{full}"
    );

    runner.terminate();
    crate::support::remove_db(&data);
}

#[test]
fn pipeline_ctl_doctor_passes_a_sound_runner_and_names_what_to_change_on_a_short_visibility() {
    let data = data_file();
    // The runner's defaults for the consumer (30 s), its visibility timeout as given.
    let sound = Runner::start_with(&data, &["--visibility-timeout-secs", "30"]);
    let healthy = ctl(&sound, &["doctor"]);
    let verdicts: Vec<Value> = String::from_utf8(ctl(&sound, &["--json", "doctor"]).stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    sound.kill();
    let short = Runner::start_with(&data, &["--visibility-timeout-secs", "5"]);
    let unhealthy = ctl(&short, &["doctor"]);
    short.kill();

    let text = String::from_utf8(healthy.stdout).unwrap();
    assert!(healthy.status.success(), "{text}");
    assert!(text.starts_with("ok    visibility timeout: 30 s"), "{text}");
    let statuses: Vec<(&str, &str)> = verdicts
        .iter()
        .map(|v| (v["check"].as_str().unwrap(), v["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        statuses,
        [
            ("visibility timeout", "ok"),
            ("consumer concurrency", "ok"),
            ("redrive", "ok"),
            ("event source mapping", "ok"),
            ("dead letters", "ok"),
            ("alarms", "skipped"),
            ("authorizer", "skipped"),
        ]
    );
    let text = String::from_utf8(unhealthy.stdout).unwrap();
    assert!(!unhealthy.status.success());
    assert!(
        text.contains("FAIL  visibility timeout: 5 s; 1 × the consumer's timeout (30 s)"),
        "{text}"
    );
    assert!(
        text.contains("fix: raise the queue's visibility timeout to at least 30 s"),
        "{text}"
    );
    assert_eq!(
        String::from_utf8(unhealthy.stderr).unwrap(),
        "pipeline-ctl: 1 check failed\n"
    );
}

#[test]
fn pipeline_ctl_logs_shows_one_job_s_lines_from_the_runner_s_log_and_never_its_content() {
    let data = data_file();
    let runner = Runner::start_with(
        &data,
        &[
            "--visibility-timeout-secs",
            "2",
            "--store-faults",
            "poison=POISON",
        ],
    );
    let job = ok(&runner, &["send", "a POISON secret"]).trim().to_owned();
    let other = ok(&runner, &["send", "a neighbour"]).trim().to_owned();
    let deadline = Instant::now() + Duration::from_secs(30);
    while json(&runner, &["status", &job])["status"] != "dead_lettered" {
        assert!(Instant::now() < deadline, "never dead-lettered");
        std::thread::sleep(Duration::from_millis(200));
    }
    let log = data.with_extension("log");
    let log_arg = log.to_str().unwrap();
    let lines = ok(&runner, &["logs", &job, "--log", log_arg]);
    let unknown = ctl(
        &runner,
        &[
            "logs",
            "01a244d0-f779-7953-b649-d07b1222fd13",
            "--log",
            log_arg,
        ],
    );
    let garbage = ctl(&runner, &["logs", "x\" or 1=1", "--log", log_arg]);
    runner.kill();

    let lines: Vec<&str> = lines.lines().collect();
    // Its acceptance, its delivery, its dead-lettering: JSON lines, each naming the job.
    assert!(lines.len() >= 3, "{lines:#?}");
    for line in &lines {
        assert!(line.contains(&job) && !line.contains(&other), "{line}");
        assert!(!line.contains("secret"), "content in the log: {line}");
        serde_json::from_str::<Value>(line).unwrap();
    }
    assert!(
        lines.iter().any(|l| l.contains("noted as dead-lettered")),
        "{lines:#?}"
    );
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no log line names job"));
    assert!(String::from_utf8_lossy(&garbage.stderr).contains("is not a job id"));
}
