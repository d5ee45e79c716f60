//! `segkit`: see `segkit --help`.

fn main() -> std::process::ExitCode {
    segkit_server::cli::main()
}
