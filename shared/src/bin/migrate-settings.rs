//! Moves integration secrets from schema 1 to schema 2 (docs/deploy.md,
//! "Upgrading"): `migrate-settings copy` before deploying, `migrate-settings
//! finish` after. Runs with the operator's AWS credentials and region.
//!
//! Usage: `migrate-settings copy|finish TABLE [PREFIX]`: the stack's
//! `TableName` output, and its `SecretsPrefix` (default `mender-iot-bridge/`).

use std::process::ExitCode;

use bridge::settings::legacy::{Migration, Report};

#[tokio::main]
async fn main() -> ExitCode {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    let (step, table, prefix) = match arguments.as_slice() {
        [step, table] => (step, table, bridge::config::SECRETS_PREFIX.default),
        [step, table, prefix] => (step, table, prefix.as_str()),
        _ => return usage(),
    };
    let aws = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(bridge::aws_http::client())
        .load()
        .await;
    let migration = Migration::new(
        aws_sdk_secretsmanager::Client::new(&aws),
        prefix,
        aws_sdk_dynamodb::Client::new(&aws),
        table,
    );
    let report = match step.as_str() {
        "copy" => migration.copy().await,
        "finish" => migration.finish().await,
        _ => return usage(),
    };
    match report {
        Ok(report) => {
            print(&report);
            if report.unreadable.is_empty() && report.role_conflicts.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(error) => {
            eprintln!("migrate-settings {step}: {error}");
            ExitCode::FAILURE
        }
    }
}

fn print(report: &Report) {
    if *report == Report::default() {
        println!("no schema-1 integration secrets to migrate");
    }
    for (what, ids) in [
        ("copied to schema 2", &report.copied),
        (
            "schema-1 secret deleted (restorable for 7 days)",
            &report.retired,
        ),
        (
            "removed meanwhile; its schema-2 copy deleted",
            &report.removed,
        ),
        ("not a schema-1 integration; left alone", &report.unreadable),
        (
            "its role is another organization's integration's too: give each its own",
            &report.role_conflicts,
        ),
    ] {
        for id in ids {
            println!("{id}: {what}");
        }
    }
}

fn usage() -> ExitCode {
    eprintln!("usage: migrate-settings copy|finish TABLE [SECRETS_PREFIX]");
    ExitCode::from(2)
}
