//! The report's header and scenario description, from the values the run really used.

use std::fmt::Write;
use std::path::Path;

use super::format::{header, row};
use super::machine::Meta;
use crate::scenario::models::{BIG, MODELS, SMALL};
use crate::scenario::regions::{
    service_ms, KILLED, REGIONS, RESIDENCY_COUNTRY, RESIDENCY_REGION, TOKEN_MS,
};
use crate::scenario::schedule::{Kind, Planned};
use crate::scenario::Scenario;

/// A report's title and what it was run with: the command, date, machine and Meridian
/// binary. Every scenario's section starts with it.
pub fn heading(out: &mut String, title: &str, meta: &Meta, meridian: &Path) {
    let _ = writeln!(out, "# {title}\n");
    let _ = writeln!(out, "- command: `{}`", meta.command_line);
    let _ = writeln!(out, "- date: {}", meta.date);
    let _ = writeln!(
        out,
        "- machine: {} CPUs ({}), {} {}",
        meta.nproc,
        meta.cpu_model,
        std::env::consts::OS,
        std::env::consts::ARCH
    );
    let _ = writeln!(
        out,
        "- meridian binary: `{}`{}\n",
        meridian.display(),
        meta.source
            .as_deref()
            .map_or_else(String::new, |s| format!(" (source: {s})"))
    );
}

pub fn render(out: &mut String, meta: &Meta, s: &Scenario, plan: &[Planned], meridian: &Path) {
    let title = if s.multi_model() {
        "Multi-model scenario"
    } else {
        "Routing benchmark results"
    };
    heading(out, title, meta, meridian);

    let _ = writeln!(out, "## Scenario\n");
    let streams = plan.iter().filter(|r| r.kind == Kind::Stream).count();
    let residency = plan.iter().filter(|r| r.residency).count();
    let _ = writeln!(
        out,
        "Every policy gets fresh mock regions on ephemeral loopback ports and the same \
         open-loop schedule (seed {}): {} requests, {} streaming chats ({:.0}% planned), \
         {} with `x-geo-country: {RESIDENCY_COUNTRY}` ({:.0}% planned), which only \
         {RESIDENCY_REGION} may serve.\n",
        s.seed,
        plan.len(),
        streams,
        s.stream_share * 100.0,
        residency,
        s.residency_share * 100.0,
    );
    if s.multi_model() {
        models(out, s, plan);
    }
    let _ = writeln!(
        out,
        "{}",
        header(
            &["phase", "from s", "length s", "rate req/s", "requests"],
            1
        )
    );
    for p in &s.phases {
        let n = plan.iter().filter(|r| r.phase == p.phase).count();
        let _ = writeln!(
            out,
            "{}",
            row(&[
                p.phase.name().into(),
                format!("{:.1}", p.start.as_secs_f64()),
                format!("{:.1}", p.len.as_secs_f64()),
                format!("{:.0}", p.rate),
                n.to_string(),
            ])
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{}",
        header(
            &[
                "region",
                "cost/1k",
                "priority",
                "latency ms",
                "work ms",
                "token ms",
                "capacity",
                "tags"
            ],
            1
        )
    );
    for r in &REGIONS {
        let _ = writeln!(
            out,
            "{}",
            row(&[
                r.name.into(),
                format!("{:.2}", r.cost_per_1k),
                r.priority.to_string(),
                r.latency_ms.to_string(),
                r.work_ms.to_string(),
                TOKEN_MS.to_string(),
                r.capacity.to_string(),
                r.tags.join(","),
            ])
        );
    }
    let _ = writeln!(out);

    // What the regions can absorb, so a reader can tell how hard each phase pushes.
    let slot_ms = service_ms(0, s.max_tokens);
    let per_s = |slots: u32| f64::from(slots) * 1000.0 / slot_ms as f64;
    let cheap_slots: u32 = REGIONS
        .iter()
        .filter(|r| r.priority == 1)
        .map(|r| r.capacity)
        .sum();
    let all_slots: u32 = REGIONS.iter().map(|r| r.capacity).sum();
    let killed_slots = REGIONS
        .iter()
        .find(|r| r.name == KILLED)
        .map_or(0, |r| r.capacity);
    let _ = writeln!(
        out,
        "- A request holds a capacity slot for work + max_tokens x token = {slot_ms} ms \
         (plain or streamed), so the priority-1 tier ({cheap_slots} slots) \
         sustains about {:.0} req/s, {KILLED} alone ({killed_slots} slots) about {:.0} req/s, \
         and all regions about {:.0} req/s. Region latency is paid before a slot is taken.",
        per_s(cheap_slots),
        per_s(killed_slots),
        per_s(all_slots),
    );
    let _ = writeln!(
        out,
        "- Outage: {KILLED} is killed (listener closed, open connections dropped) at \
         t = {:.1} s, the start of the outage phase.",
        s.outage_start().as_secs_f64()
    );
    let _ = writeln!(
        out,
        "- Plain calls: POST /v1/chat/completions, max_tokens {}, answered in one JSON body. \
         Streams: the same with `\"stream\": true` and `stream_options.include_usage`; a \
         success needs `data: [DONE]`.{} Every answer reports its usage (prompt and \
         completion tokens), read by the harness from the JSON body or the stream's last \
         chunk; a region's price is its cost/1k for every token, input and output{}.",
        s.max_tokens,
        if s.multi_model() {
            " Both carry the model in the body's `model`."
        } else {
            " Both name `mock-model`, which every region serves."
        },
        if s.multi_model() {
            " (Meridian's config gives each model that price per 1M tokens)"
        } else {
            " (Meridian's config declares no model, so it prices by cost_per_1k too)"
        }
    );
    let _ = writeln!(
        out,
        "- Latency and TTFT run from each request's scheduled send time, so routing work \
         (probes, retries) counts. TTFT is the first body chunk of a stream and the total \
         for a plain call. Percentiles are nearest-rank over successful requests; \
         failures are counted as errors. Whole-request timeout {} s.",
        s.request_timeout.as_secs()
    );
    let _ = writeln!(
        out,
        "- meridian: generated config with health_check interval 500ms / timeout 1s, geo \
         rule eu-data-residency (match [{RESIDENCY_COUNTRY}], allow [tag:eu]), every other \
         setting at its default; `RUST_LOG=warn`.\n\
         - round-robin: rotation over allowed regions, nginx passive health \
         (max_fails=1, fail_timeout=10s).\n\
         - naive-probe-all: per request, GET /health on every allowed region (1 s timeout), \
         pick min(priority + 10 x probe seconds).\n\
         - latency-only: lowest mean of the last 10 total latencies, unsampled regions \
         first, 5 s cooldown after a failure.\n\
         - cheapest-healthy-first: probes every 1 s, cheapest healthy (priority, then \
         cost).\n\
         - cheapest-with-room: knows the regions' capacities and counts its own requests in \
         flight to each (from sending to the end of the answer); the cheapest allowed region \
         below its capacity, else the least loaded (in flight / capacity).\n\
         - feasible-oracle: offline, knows the schedule and every region's true slots, \
         latency and service time; in arrival order, the cheapest allowed region with a \
         slot free when the request arrives there (nothing queues unless no allowed region \
         has one), nothing to the killed region that would still run at the kill. Planned \
         before the run from the schedule alone, then run like every other policy.\n\
         - Every baseline routes `{RESIDENCY_COUNTRY}` requests only to {RESIDENCY_REGION} \
         and retries once, on the next candidate, after a connection error.\n"
    );
    if s.multi_model() {
        let _ = writeln!(
            out,
            "- Models, meridian: the config declares both models (`models:`, {} with alias \
             {}) and each region's list, with `upstream_name` where the region's name differs \
             and each model's `price` there (input and output per 1M tokens: the region's \
             cost/1k x 1000); the client sends the fleet-wide name and Meridian rewrites it \
             for the region it picks.\n\
             - Models, baselines: each knows the catalogue a client of this fleet would know, \
             so it picks only among the regions serving the request's model (residency still \
             applies) and sends the region's own name. Round-robin rotates per model; \
             latency-only keeps its samples and cooldowns per (model, region), as LiteLLM \
             keeps them per deployment; health is per region.\n",
            MODELS[BIG].name,
            MODELS[BIG].aliases.join(", "),
        );
    }
}

/// The multi-model scenario's catalogue: who serves what under which name, and the mix.
fn models(out: &mut String, s: &Scenario, plan: &[Planned]) {
    let count = |m: usize| plan.iter().filter(|r| r.model == Some(m)).count();
    let _ = writeln!(
        out,
        "Every request names a model: {} {} requests ({:.0}% planned), {} {} requests. The \
         arrivals, kinds and residency headers are those of the default scenario with the \
         same seed; the model is drawn from a stream of its own. A region refuses a name it \
         does not serve with vLLM's 404 (`The model ... does not exist`). Each cell is the \
         name the region knows the model by; a dash, the region does not serve it.\n",
        MODELS[BIG].name,
        count(BIG),
        s.big_share * 100.0,
        MODELS[SMALL].name,
        count(SMALL),
    );
    let mut names = vec!["model"];
    names.extend(REGIONS.iter().map(|r| r.name));
    let _ = writeln!(out, "{}", header(&names, names.len()));
    for m in &MODELS {
        let mut cells = vec![m.name.to_string()];
        cells.extend((0..REGIONS.len()).map(|r| {
            m.upstream_name(r)
                .map_or_else(|| "–".to_string(), |own| format!("`{own}`"))
        }));
        let _ = writeln!(out, "{}", row(&cells));
    }
    let _ = writeln!(out);
}
