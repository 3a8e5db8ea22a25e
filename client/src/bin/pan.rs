//! `pan`: the command line (see `pan_client::cli`).

fn main() -> std::process::ExitCode {
    pan_client::cli::main()
}
