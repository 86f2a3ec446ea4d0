//! Sluice's load generator. `loadgen bench SCENARIO` starts each peer under
//! `benchmarks/peers/` in turn, drives it with worker processes (`loadgen worker`,
//! single-threaded, a share of the connections each) and prints a markdown table.
//!
//! Layout: `worker` (connections, publishers, latency histogram), `suite` (peers,
//! scenarios, the table), `procfs` (the server's RSS and CPU from `/proc`).

mod procfs;
mod suite;
mod worker;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "Load generator and side-by-side benchmarks for Sluice")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs a scenario against each peer and prints a markdown table.
    Bench(suite::BenchArgs),
    /// One worker process; driven by `bench` over stdin and stdout.
    Worker(worker::WorkerArgs),
    /// Prints an HS256 JWT for the plugin peer (`sub` = SUBJECT, valid for an hour).
    Token {
        /// The token's `sub`.
        subject: String,
        /// The HS256 secret.
        #[arg(long, default_value = suite::JWT_SECRET)]
        secret: String,
    },
}

fn main() {
    match Cli::parse().command {
        Command::Bench(args) => suite::run(&args),
        Command::Worker(args) => worker::run(args),
        Command::Token { subject, secret } => println!("{}", worker::token(&secret, &subject)),
    }
}
