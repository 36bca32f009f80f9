//! The `sqld-operator` binary: `run` the controller, `render` the objects of
//! a SqldCluster file, or print the `crd`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use sqld_operator::builders::Credentials;
use sqld_operator::controller::RunOptions;
use sqld_operator::telemetry::LogFormat;

#[derive(Parser)]
#[command(
    name = "sqld-operator",
    version,
    about = "Kubernetes operator for sqld clusters"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Watch SqldClusters and reconcile their children (needs a cluster).
    Run(RunOptions),
    /// Print every object the operator would create for the SqldClusters in
    /// FILE (`-` for stdin), without a cluster.
    Render {
        #[arg(short = 'f', long = "filename")]
        file: PathBuf,
    },
    /// Print the SqldCluster CustomResourceDefinition.
    Crd,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Crd => sqld_operator::crd::crd_yaml()
            .map(|y| print!("{y}"))
            .map_err(Into::into),
        Command::Render { file } => render(&file),
        Command::Run(opts) => run(opts),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sqld-operator: {e}");
            ExitCode::FAILURE
        }
    }
}

fn render(file: &PathBuf) -> sqld_operator::Result<()> {
    let text = if file.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin())?
    } else {
        std::fs::read_to_string(file)?
    };
    print!(
        "{}",
        sqld_operator::render::render_yaml(&text, Credentials::generate)?
    );
    Ok(())
}

fn run(opts: RunOptions) -> sqld_operator::Result<()> {
    sqld_operator::telemetry::init(opts.log_format.unwrap_or(LogFormat::Text));
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(sqld_operator::controller::run(opts))
}
