//! The `kiln` command line: inspect, run, compile, verify, bench, generate and conformance.

mod cli;
mod compile;
mod generate;
mod gpu;
mod inspect;
mod model;
mod quant;
mod run;
mod verify;

fn main() {
    quiet_on_closed_stdout();
    if let Err(e) = cli::main() {
        eprintln!("error: {e}");
        for cause in e.chain().skip(1) {
            eprintln!("  caused by: {cause}");
        }
        std::process::exit(1);
    }
}

/// `kiln bench m.kiln | head`: once the reader has closed stdout, printing fails (Rust ignores
/// SIGPIPE, so `println!` panics). Exit quietly instead, with the status a process killed by
/// SIGPIPE has (128 + 13), as other command-line tools do.
fn quiet_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info.payload().downcast_ref::<String>().map(String::as_str).or_else(|| info.payload().downcast_ref::<&str>().copied());
        if msg.is_some_and(|m| m.starts_with("failed printing to stdout") && m.contains("Broken pipe")) {
            std::process::exit(141);
        }
        default(info)
    }));
}
