use std::process::ExitCode;

use clap::Parser;
use wolkvox_exporter::app::ExporterError;
use wolkvox_exporter::backfill::BackfillFlags;
use wolkvox_exporter::clock::Clock;
use wolkvox_exporter::config::{Config, Flags};

/// `wolkvox_exporter backfill`: the exporter's target flags and the backfill's own.
#[derive(Parser)]
#[command(
    name = "wolkvox_exporter backfill",
    version,
    about = "Writes months of Wolkvox billing history as OpenMetrics for `promtool tsdb create-blocks-from openmetrics`"
)]
struct BackfillCli {
    #[command(flatten)]
    flags: Flags,
    #[command(flatten)]
    backfill: BackfillFlags,
}

fn main() -> ExitCode {
    if std::env::args().nth(1).as_deref() == Some("backfill") {
        return backfill(std::env::args().skip(2));
    }
    let flags = Flags::parse();
    let config = match Config::from_flags(&flags, &|name| std::env::var(name).ok()) {
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

fn backfill(args: impl Iterator<Item = String>) -> ExitCode {
    let cli = BackfillCli::parse_from(std::iter::once("wolkvox_exporter backfill".to_owned()).chain(args));
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
