//! The `sluice` binary: parses the command line, sets up logging, binds, and serves.

use clap::{Parser, Subcommand};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

/// Exit status for a bad configuration (EX_CONFIG).
const EXIT_CONFIG: u8 = 64;

#[derive(Parser)]
#[command(name = "sluice", version, about = "A WebSocket gateway shaped by WebAssembly plugins")]
struct Cli {
    /// The configuration file.
    #[arg(long, short, global = true, default_value = "gateway.toml")]
    config: PathBuf,
    /// Listen on this address instead of `server.listen` (`127.0.0.1:0` picks a port).
    #[arg(long, global = true)]
    listen: Option<String>,
    /// Listen for the admin endpoints here instead of `admin.listen`.
    #[arg(long, global = true)]
    admin_listen: Option<String>,
    /// Log lines as `text` or `json` (one object per line); default `server.log_format`.
    #[arg(long, value_enum, global = true)]
    log_format: Option<sluice::config::LogFormat>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Validate the configuration and load every plugin, without serving.
    Check,
    /// Plugin authoring: `sluice plugin new NAME --lang rust|js|python|c [--dir PATH]`.
    #[command(subcommand)]
    Plugin(sluice::scaffold::PluginCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Plugin(command)) = &cli.command {
        return sluice::scaffold::run(command);
    }
    // SIGHUP's default action ends the process: catch it before anything slow (reading
    // the config, compiling plugins), so that a reload sent during start waits for it.
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    let hangup = {
        let _entered = runtime.enter();
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok()
    };
    let config = match sluice::config::load(&cli.config) {
        Ok(mut config) => {
            if let Some(listen) = cli.listen.clone() {
                config.server.listen = listen;
            }
            if let (Some(admin), Some(listen)) = (&mut config.admin, cli.admin_listen.clone()) {
                admin.listen = listen;
            }
            config
        }
        Err(errors) => {
            eprintln!("{errors}");
            eprintln!("{} error(s) in {}", errors.errors.len(), cli.config.display());
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("SLUICE_LOG").unwrap_or_else(|_| "info".into());
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match cli.log_format.unwrap_or(config.server.log_format) {
        sluice::config::LogFormat::Json => logs.json().init(),
        sluice::config::LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
    }
    match config.check_secrets() {
        Ok(warnings) => {
            for w in warnings {
                tracing::warn!(line = w.line, key = w.key, "{}", w.message);
            }
        }
        Err(errors) => {
            let file = cli.config.display().to_string();
            let errors = sluice::config::ConfigErrors { file, errors };
            eprintln!("{errors}");
            eprintln!("{} error(s) in {}", errors.errors.len(), cli.config.display());
            return ExitCode::from(EXIT_CONFIG);
        }
    }
    runtime.block_on(async move {
        match cli.command {
            Some(Command::Plugin(_)) => unreachable!("handled before the config is loaded"),
            Some(Command::Check) => match sluice::Gateway::build(config).await {
                Ok(gateway) => {
                    println!("{}: ok ({} route(s))", cli.config.display(), gateway.routes.len());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("{e}");
                    ExitCode::from(EXIT_CONFIG)
                }
            },
            None => {
                let listener = match tokio::net::TcpListener::bind(&config.server.listen).await {
                    Ok(listener) => listener,
                    Err(e) => {
                        eprintln!("cannot listen on {}: {e}", config.server.listen);
                        return ExitCode::FAILURE;
                    }
                };
                let admin = match &config.admin {
                    Some(admin) => match tokio::net::TcpListener::bind(&admin.listen).await {
                        Ok(listener) => Some(listener),
                        Err(e) => {
                            eprintln!("cannot listen on {} (admin.listen): {e}", admin.listen);
                            return ExitCode::FAILURE;
                        }
                    },
                    None => None,
                };
                match sluice::Gateway::build(config).await {
                    Ok(gateway) => {
                        gateway.set_source(cli.config.clone(), cli.listen.clone());
                        if let Some(admin) = admin {
                            // Serves until the process exits, through the shutdown drain.
                            let serving =
                                sluice::admin::serve_admin(admin, gateway.clone(), std::future::pending());
                            tokio::spawn(serving);
                        }
                        if let Some(every) = gateway.server.watch {
                            let (config, listen) = (cli.config.clone(), cli.listen.clone());
                            tokio::spawn(gateway.clone().watch_files(config, listen, every.0));
                        }
                        let reloads = sluice::shutdown::reload_on_hangup(
                            gateway.clone(),
                            hangup,
                            cli.config,
                            cli.listen,
                        );
                        tokio::spawn(reloads);
                        sluice::server::serve_gateway(listener, gateway, sluice::shutdown::signals()).await;
                        ExitCode::SUCCESS
                    }
                    Err(e) => {
                        eprintln!("{e}");
                        ExitCode::from(EXIT_CONFIG)
                    }
                }
            }
        }
    })
}
