//! The binary: the exporter, or `wolkvox_exporter backfill`. Parses the command line, builds the
//! configuration and runs either on its own tokio runtime.

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use wolkvox_exporter::{BackfillFlags, Clock, Config, ExporterError, Flags};

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
        print!("{}", config.summary());
        return ExitCode::SUCCESS;
    }
    wolkvox_exporter::init_logging(config.log_level, config.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(usize::from(flags.worker_threads))
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("wolkvox_exporter: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(wolkvox_exporter::run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "exporter stopped");
            eprintln!("wolkvox_exporter: {error}");
            // A state directory that cannot be used is a configuration problem, like a bad flag.
            if matches!(error, ExporterError::Storage(_)) {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
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
    wolkvox_exporter::init_logging(config.log_level, config.log_format);
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("wolkvox_exporter backfill: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(wolkvox_exporter::backfill(config, cli.backfill, Clock::system())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("wolkvox_exporter backfill: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}
