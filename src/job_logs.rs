//! `pipeline-ctl logs <job id>`: one job's log lines across the functions. On a stack, the
//! README's CloudWatch Logs Insights query over the stack's log groups; on the runner, the
//! lines of its log file (JSON, one line an event) that name the job.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, Context as _};
use pipeline::domain::JobId;

use crate::doctor::aws::call_failed;

/// The query the README gives. The job id is a parsed UUID: nothing else gets into it.
pub fn insights_query(job: JobId) -> String {
    format!("fields @timestamp, @log, @message\n| filter @message like \"{job}\"\n| sort @timestamp asc\n| limit 10000")
}

/// The runner's log file beside its database: `.local/pipeline.db` logs to
/// `.local/pipeline.log`.
pub fn runner_log(database: &Path) -> std::path::PathBuf {
    database.with_extension("log")
}

/// The lines of the runner's log that name `job`, in order.
pub fn from_file(log: &Path, job: JobId) -> anyhow::Result<Vec<String>> {
    let text = std::fs::read_to_string(log).with_context(|| {
        format!(
            "reading {} (the runner's log; --log names another)",
            log.display()
        )
    })?;
    let needle = job.to_string();
    Ok(text
        .lines()
        .filter(|line| line.contains(&needle))
        .map(str::to_owned)
        .collect())
}

/// The lines of the stack's log groups that name `job` in the last `since`, by Logs
/// Insights: `timestamp  log group  message` each.
pub async fn from_cloudwatch(
    stack: &str,
    job: JobId,
    since: Duration,
) -> anyhow::Result<Vec<String>> {
    let config = pipeline::adapters::aws::sdk_config().await;
    let groups: Vec<String> = crate::doctor::aws::resources(&config, stack)
        .await?
        .into_values()
        .filter(|(kind, _)| kind == "AWS::Logs::LogGroup")
        .map(|(_, name)| name)
        .collect();
    anyhow::ensure!(!groups.is_empty(), "stack {stack} has no log groups");
    let logs = aws_sdk_cloudwatchlogs::Client::new(&config);
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() as i64;
    let query = logs
        .start_query()
        .set_log_group_names(Some(groups))
        .start_time(now - since.as_secs() as i64)
        .end_time(now)
        .query_string(insights_query(job))
        .send()
        .await
        .map_err(|e| call_failed("starting the Logs Insights query", e))?
        .query_id
        .ok_or_else(|| anyhow!("Logs Insights gave no query id"))?;
    use aws_sdk_cloudwatchlogs::types::QueryStatus;
    for _ in 0..120 {
        let answer = logs
            .get_query_results()
            .query_id(&query)
            .send()
            .await
            .map_err(|e| call_failed("reading the query's results", e))?;
        match answer.status() {
            Some(QueryStatus::Complete) => {
                return Ok(answer
                    .results()
                    .iter()
                    .map(|row| {
                        let field = |name: &str| {
                            row.iter()
                                .find(|f| f.field() == Some(name))
                                .and_then(|f| f.value())
                                .unwrap_or_default()
                        };
                        format!(
                            "{}  {}  {}",
                            field("@timestamp"),
                            field("@log"),
                            field("@message").trim_end()
                        )
                    })
                    .collect());
            }
            Some(QueryStatus::Failed | QueryStatus::Cancelled | QueryStatus::Timeout) => {
                anyhow::bail!("the Logs Insights query ended {:?}", answer.status())
            }
            _ => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
    anyhow::bail!("the Logs Insights query did not finish within a minute")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_is_the_readmes_and_names_the_job() {
        let job: JobId = "01a244d0-f779-7953-b649-d07b1222fd13".parse().unwrap();
        let readme = include_str!("../README.md");
        let query = insights_query(job);
        let as_in_readme = query
            .replace("01a244d0-f779-7953-b649-d07b1222fd13", "<job id>")
            .replace("\n| limit 10000", "");
        assert!(readme.contains(&as_in_readme), "{as_in_readme}");
    }

    #[test]
    fn the_runner_logs_beside_its_database() {
        assert_eq!(
            runner_log(Path::new(".local/pipeline.db")),
            Path::new(".local/pipeline.log")
        );
    }
}
