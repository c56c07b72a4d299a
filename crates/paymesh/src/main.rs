//! The one paymesh binary. Everything lives in the library modules; `main` only dispatches.

mod bills_cli;
mod cli;
mod demo;
mod demo_bills;
mod demo_settlement;
mod demo_stall;
mod dev;
mod merchant_cli;
mod payment_cli;
mod qr;
mod settlement_cli;
mod stack;
mod verbs;

/// mimalloc instead of glibc's malloc: allocation was a sixth of the ledger's CPU per
/// single-transfer RPC (`perf record` under `paymesh-load ledger --batch 1`), most of it
/// glibc's free-list upkeep; see the README's benchmark.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    cli::main()
}
