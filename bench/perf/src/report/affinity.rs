//! The subsection on what prompt-cache affinity costs per request, with its own command
//! line and source, so it stands on its own when a run of that phase alone merges it in.

use super::{binary_source, command_line, diff, fmt, median, ratio_f, spread};
use crate::cli::Opts;
use crate::instr::{AffinityCase, AffinityCost, AFFINITY_KIB, SESSION_HEADER};
use std::fmt::Write as _;

pub const AFFINITY: &str = "### Prompt-cache affinity: instructions per request";

pub fn affinity_section(md: &mut String, a: &AffinityCost, opts: &Opts) {
    let _ = writeln!(
        md,
        "{AFFINITY}\n\nWhat prompt-cache affinity costs per request for a key already in the \
         table (the hit path: every request of a run carries the same key, so after the \
         first request each one finds its key's place and stays there). The same Meridian \
         binary, default config, mock regions and client as the model-routing table: \
         OpenAI chat completions of exactly {AFFINITY_KIB} KiB (a system turn and a long \
         user turn, then `model`), sent with a Content-Length over {} keep-alive \
         connection(s), each one request at a time as a conversation sends its turns (ten \
         at once with one key pile onto its endpoint until the latency in the score moves \
         the key: about a fifth of the requests moved when this phase first ran so), in front of five mock regions that read every body whole. Five \
         configurations, one Meridian process under callgrind each, in front of fresh \
         regions; per configuration, the warm-up requests, then {} run(s) between \
         `callgrind_control -z` and `-d`. Medians of the runs; spread is (max - min) / \
         median; added is the median minus that of the row with the same models and \
         affinity off.\n",
        crate::instr::AFFINITY_CONNECTIONS,
        opts.instr_runs,
    );
    let _ = writeln!(
        md,
        "- **without models, affinity off** (`affinity: {{enabled: false}}`, the config's \
         `models` taken out): Meridian streams the body through unread.\n\
         - **without models, affinity on, `read_body: always`**: no session header, no \
         `prompt_cache_key` or `user`, so the key is a hash of the prompt's leading \
         messages (the system turn and the first user turn); the body is held and read for \
         it alone (by default, `read_body: auto`, a body is not held without declared \
         models, and this request would have no key).\n\
         - **with models, affinity off**: `{}` declared, every region serving it under a \
         name of its own, so every body is read and held, its `model` found and rewritten.\n\
         - **with models, affinity on, key from the prompt prefix**: after the pass that \
         finds the model, a second read of the held body hashes the leading messages.\n\
         - **with models, affinity on, key from `{}`**: every request carries `{}: {}`, so \
         the key is the header's and the body is read for its model only.\n",
        crate::request::CHAT_MODEL,
        SESSION_HEADER.0,
        SESSION_HEADER.0,
        SESSION_HEADER.1,
    );
    let _ = writeln!(md, "- command: `{}`", command_line());
    let _ = writeln!(md, "- meridian: {}", binary_source(&opts.bin_dir));
    for c in &a.cases {
        let d = &c.decisions;
        let reasons: Vec<String> = d.reasons.iter().map(|(r, n)| format!("{r} {n}")).collect();
        let counted = match c.case.source() {
            None => "no affinity decision".to_string(),
            Some(_) => format!(
                "affinity decisions {} hits, {} new key(s), {} move(s){}",
                d.hits,
                d.new_keys,
                d.moves,
                if reasons.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", reasons.join(", "))
                }
            ),
        };
        let _ = writeln!(
            md,
            "- {}: {}; Meridian's `/metrics` over the warm-up and runs: {counted}; one more \
             request with `x-meridian-debug: 1` (counted in the regions' total) was decided \
             `{}`",
            c.case.name(),
            c.upstream,
            c.decision
        );
    }
    md.push('\n');
    let _ = writeln!(
        md,
        "| configuration | warm-up | requests per run | instructions per request (median) | spread | added vs. its affinity-off row |"
    );
    let _ = writeln!(md, "| --- | ---: | ---: | ---: | ---: | ---: |");
    let med = |case: AffinityCase| {
        a.cases
            .iter()
            .find(|c| c.case == case)
            .and_then(|c| median(c.runs.clone()))
    };
    for c in &a.cases {
        let m = median(c.runs.clone());
        let added = match c.case.baseline() {
            None => "-".to_string(),
            Some(b) => {
                let base = med(b);
                match (diff(m, base), ratio_f(m, base)) {
                    (Some(d), Some(r)) => format!("{d:+.0} ({:+.2}%)", (r - 1.0) * 100.0),
                    _ => "-".into(),
                }
            }
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {added} |",
            c.case.name(),
            c.warmup,
            c.requests,
            fmt(m, 0),
            spread(&c.runs).map_or("-".into(), |s| format!("{:.2}%", s * 100.0)),
        );
    }
    md.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn a_run_of_this_phase_alone_owns_only_its_section() {
        let opts = Opts::parse_from(["perf-bench", "--only", "instructions-affinity"]);
        let text = format!(
            "## Instructions per request\n\n{}\n\nmodels\n\n{AFFINITY}\n\naffinity\n",
            super::super::MODEL_ROUTING
        );
        assert_eq!(
            super::super::owned(&opts, &text),
            vec![AFFINITY.to_string()]
        );
    }
}
