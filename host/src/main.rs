//! The `atrium` binary: parse the command line, hand over to the library.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = atrium::cli::Cli::parse();
    if let atrium::cli::Command::Serve(args) = &cli.command {
        // Candle sizes its matmul parallelism from RAYON_NUM_THREADS, not from the thread pool
        // a job runs in: make it match the per-slot budget. Safe here: no other thread exists yet.
        if let Ok(cfg) = atrium::config::ServeConfig::resolve(args.clone()) {
            unsafe { std::env::set_var("RAYON_NUM_THREADS", cfg.threads_per_slot.to_string()) };
        }
    }
    if !matches!(cli.command, atrium::cli::Command::Serve(_)) {
        // A closed pipe (`atrium run list --output json | head`) ends a client command quietly,
        // as it does other Unix tools, instead of making the next print panic. The server keeps
        // ignoring SIGPIPE (its sockets and job pipes report EPIPE as an error instead).
        // SAFETY: no other thread exists yet; SIG_DFL is a valid disposition.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    }
    let default_level = if matches!(cli.command, atrium::cli::Command::Serve(_)) {
        "info"
    } else {
        "warn"
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("ATRIUM_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level)),
        )
        .with_writer(std::io::stderr)
        // colour codes only on a terminal, not in log files and pipes
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(atrium::cli::run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
