//! The one paymesh binary. Everything lives in the library modules; `main` only dispatches.

mod cli;
mod demo;
mod dev;
mod merchant_cli;
mod qr;
mod stack;

fn main() -> std::process::ExitCode {
    cli::main()
}
