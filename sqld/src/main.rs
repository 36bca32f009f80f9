use clap::{CommandFactory, FromArgMatches};
use sqld::config::{secrets_on_command_line, Config, LogFormat};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let matches = Config::command().get_matches();
    let config = Config::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let filter = EnvFilter::try_from_env("SQLD_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    match config.log_format {
        LogFormat::Json => tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .init(),
        LogFormat::Text => tracing_subscriber::fmt().with_env_filter(filter).init(),
    }
    for warning in secrets_on_command_line(&matches) {
        tracing::warn!("{warning}");
    }
    let result = match config.command.clone() {
        Some(sqld::config::Command::DevCluster(cluster)) => sqld::dev_cluster::run(cluster).await,
        Some(sqld::config::Command::Restore(r)) => sqld::backup::cli::run_restore(&r).await,
        Some(sqld::config::Command::Backup(b)) => sqld::backup::cli::run_backup(&b).await,
        Some(sqld::config::Command::Promote(target)) => sqld::control::promote(&target).await,
        Some(sqld::config::Command::Follow(follow)) => sqld::control::follow(&follow).await,
        Some(sqld::config::Command::Status(target)) => sqld::control::status(&target).await,
        Some(sqld::config::Command::Switchover(s)) => sqld::control::switchover(&s).await,
        None => sqld::run(config).await,
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("sqld: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
