//! The `kiln` command line: inspect, run, compile, verify, bench and conformance.

mod cli;
mod gpu;

fn main() {
    if let Err(e) = cli::main() {
        eprintln!("error: {e}");
        for cause in e.chain().skip(1) {
            eprintln!("  caused by: {cause}");
        }
        std::process::exit(1);
    }
}
