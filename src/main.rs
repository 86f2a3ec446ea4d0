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
    #[arg(long)]
    listen: Option<String>,
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
    let filter = tracing_subscriber::EnvFilter::try_from_env("SLUICE_LOG").unwrap_or_else(|_| "info".into());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let config = match sluice::config::load(&cli.config) {
        Ok(mut config) => {
            if let Some(listen) = cli.listen.clone() {
                config.server.listen = listen;
            }
            config
        }
        Err(errors) => {
            eprintln!("{errors}");
            eprintln!("{} error(s) in {}", errors.errors.len(), cli.config.display());
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
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
                match sluice::Gateway::build(config).await {
                    Ok(gateway) => {
                        if let Some(every) = gateway.server.watch {
                            let (config, listen) = (cli.config.clone(), cli.listen.clone());
                            tokio::spawn(gateway.clone().watch_files(config, listen, every.0));
                        }
                        let hangup =
                            sluice::shutdown::reload_on_hangup(gateway.clone(), cli.config, cli.listen);
                        tokio::spawn(hangup);
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
