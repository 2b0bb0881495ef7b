//! The standalone `goforward` binary: every plugin this build enables.

fn main() -> std::process::ExitCode {
    goforward::cli::main_with(goforward::with_default_plugins)
}
