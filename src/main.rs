//! The `datatier` binary: everything lives in the library (see `datatier::cli`).
fn main() -> std::process::ExitCode {
    datatier::cli::main()
}
