//! The binary: the exporter, or `wolkvox_exporter backfill`. Parses the command line, builds the
//! configuration and runs either on its own tokio runtime.

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use wolkvox_exporter::app::ExporterError;
use wolkvox_exporter::backfill::BackfillFlags;
use wolkvox_exporter::clock::Clock;
use wolkvox_exporter::config::{Config, Flags};

// The exporter's flags, or a subcommand with its own (a plain comment: a doc comment would replace
// the flags' `about` in --help). A flag before the subcommand is refused rather than ignored
// (`args_conflicts_with_subcommands`); clap counts only the command line there, so the WOLKVOX_*
// variables that Docker Compose and systemd set do not conflict with `backfill`.
#[derive(Parser)]
#[command(args_conflicts_with_subcommands = true, disable_help_subcommand = true)]
struct Cli {
    #[command(flatten)]
    flags: Flags,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Writes months of Wolkvox billing history as OpenMetrics for `promtool tsdb create-blocks-from openmetrics`
    Backfill(BackfillCli),
}

/// `wolkvox_exporter backfill`: the exporter's target flags and the backfill's own.
#[derive(Args)]
struct BackfillCli {
    #[command(flatten)]
    flags: Flags,
    #[command(flatten)]
    backfill: BackfillFlags,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Backfill(backfill_cli)) => backfill(backfill_cli),
        None => exporter(&cli.flags),
    }
}

fn exporter(flags: &Flags) -> ExitCode {
    let config = match Config::from_flags(flags, &|name| std::env::var(name).ok()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("wolkvox_exporter: {error}");
            return ExitCode::from(2);
        }
    };
    if flags.config_check {
        print_targets(&config);
        return ExitCode::SUCCESS;
    }
    wolkvox_exporter::logging::init(config.log_level, config.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(usize::from(flags.worker_threads)).enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("wolkvox_exporter: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(wolkvox_exporter::app::run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "exporter stopped");
            eprintln!("wolkvox_exporter: {error}");
            // A state directory that cannot be used is a configuration problem, like a bad flag.
            if matches!(error, ExporterError::Storage(_)) { ExitCode::from(2) } else { ExitCode::FAILURE }
        }
    }
}

fn backfill(cli: BackfillCli) -> ExitCode {
    let config = match Config::from_flags(&cli.flags, &|name| std::env::var(name).ok()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("wolkvox_exporter backfill: {error}");
            return ExitCode::from(2);
        }
    };
    wolkvox_exporter::logging::init(config.log_level, config.log_format);
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("wolkvox_exporter backfill: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(wolkvox_exporter::backfill::run_with_demo(config, cli.backfill, Clock::system())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("wolkvox_exporter backfill: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}

fn print_targets(config: &Config) {
    println!("configuration is valid: {} target(s), {} budget(s)", config.targets.len(), config.budgets.len());
    for target in &config.targets {
        println!(
            "server={} apis={} base_url={} token={} token_name={} daily_call_budget={} token_info={} poll_interval={} timeout={} timezone={}",
            target.server,
            target.apis.iter().map(|api| api.name).collect::<Vec<_>>().join(","),
            target.base_url,
            target.token_source,
            target.token_name,
            target.daily_call_budget.map_or("none".to_owned(), |budget| budget.to_string()),
            target.token_info,
            humantime::format_duration(target.poll_interval),
            humantime::format_duration(target.timeout),
            target.timezone_name,
        );
    }
}
