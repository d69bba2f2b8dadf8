use clap::Parser;

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let code = meridian::cli::run(meridian::cli::Cli::parse());
    std::process::exit(code);
}
