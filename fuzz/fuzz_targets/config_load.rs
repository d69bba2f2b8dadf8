//! The config loader on arbitrary text: a clear error or a config, never a panic. Host
//! names are not resolved (no network); IP literals are.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meridian::config::Config;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Err(e) = Config::load_str_offline(text, "fuzz.yaml") {
            // Every refusal names the file.
            assert!(e.to_string().contains("fuzz.yaml"), "{e}");
        }
    }
});
