//! The `leafe` binary: [`leafe::cli::main`] (parse, set up logging, run, map
//! the outcome to an exit code: 0 success, 1 a requested check failed, 2
//! error).

fn main() -> std::process::ExitCode {
    leafe::cli::main()
}
