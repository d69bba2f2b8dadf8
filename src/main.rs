use clap::Parser;

// glibc's malloc and free were a fifth of the proxy's CPU under load (bench/profile).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let code = meridian::cli::run(meridian::cli::Cli::parse());
    std::process::exit(code);
}
