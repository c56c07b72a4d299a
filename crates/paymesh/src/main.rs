//! The one paymesh binary. Everything lives in the library modules; `main` only dispatches.

mod cli;
mod demo;
mod dev;
mod qr;
mod stack;

fn main() -> std::process::ExitCode {
    cli::main()
}
