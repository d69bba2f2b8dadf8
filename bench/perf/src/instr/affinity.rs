//! What prompt-cache affinity costs per request: Meridian under callgrind with affinity off
//! and on, without and with models, every request of a run carrying the same key, so the
//! key is already in the table (the hit path).

use super::{check_upstream, metrics, per_size, wrapper, Callgrind, Job};
use crate::cli::Opts;
use crate::systems::{self, Affinity, Models, Setup, Variant};
use crate::{request, upstream};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The body size of every case.
pub const AFFINITY_KIB: u32 = 1;

/// Client connections, each one request at a time: one conversation sends one turn at a
/// time. Ten at once with one key pile onto its endpoint until the load feedback in the
/// score moves the key (about a fifth of the requests did), so the figure would mix moves
/// into the hit path it is for.
pub const AFFINITY_CONNECTIONS: u32 = 1;

/// The session header and value the header case sends.
pub const SESSION_HEADER: (&str, &str) = ("x-session-id", "bench-session-1");

/// One configuration measured, in the order of the report's table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Case {
    /// Without models, `affinity.enabled: false`: the body streams through unread.
    PlainOff,
    /// Without models, affinity on with `read_body: always`: the key comes from the
    /// prompt's leading messages, so the body is held and read for it alone.
    PlainPrefix,
    /// Models declared, affinity off: the body is read for its model.
    ModelsOff,
    /// Models declared, affinity on, the key from the prompt's leading messages (a second
    /// read of the body held for its model, up to the first user message).
    ModelsPrefix,
    /// Models declared, affinity on, the key from the session header: the body is read
    /// for its model only.
    ModelsHeader,
}

impl Case {
    pub const ALL: [Case; 5] = [
        Case::PlainOff,
        Case::PlainPrefix,
        Case::ModelsOff,
        Case::ModelsPrefix,
        Case::ModelsHeader,
    ];

    /// What a smoke run measures: two processes (as the model-routing smoke), which between
    /// them build every config and request the phase uses and check both kinds of count.
    pub const SMOKE: [Case; 2] = [Case::ModelsOff, Case::ModelsHeader];

    pub fn models(self) -> Models {
        match self {
            Case::PlainOff | Case::PlainPrefix => Models::None,
            Case::ModelsOff | Case::ModelsPrefix | Case::ModelsHeader => Models::Declared,
        }
    }

    pub fn affinity(self) -> Affinity {
        match self {
            Case::PlainOff | Case::ModelsOff => Affinity::Off,
            Case::PlainPrefix => Affinity::BodyAlways,
            Case::ModelsPrefix | Case::ModelsHeader => Affinity::Default,
        }
    }

    /// The row this one's added instructions are measured from: the same models, affinity
    /// off. `None` for the off rows themselves.
    pub fn baseline(self) -> Option<Case> {
        match self {
            Case::PlainOff | Case::ModelsOff => None,
            Case::PlainPrefix => Some(Case::PlainOff),
            Case::ModelsPrefix | Case::ModelsHeader => Some(Case::ModelsOff),
        }
    }

    /// The key source Meridian should report (`key=` of the decision header), when on.
    pub fn source(self) -> Option<&'static str> {
        match self {
            Case::PlainOff | Case::ModelsOff => None,
            Case::PlainPrefix | Case::ModelsPrefix => Some("prefix"),
            Case::ModelsHeader => Some("header"),
        }
    }

    pub fn name(self) -> String {
        let key = match self {
            Case::PlainOff | Case::ModelsOff => String::new(),
            Case::PlainPrefix | Case::ModelsPrefix => ", key from the prompt prefix".into(),
            Case::ModelsHeader => format!(", key from `{}`", SESSION_HEADER.0),
        };
        format!("{}, {}{key}", self.models().name(), self.affinity().name())
    }

    fn tag(self) -> &'static str {
        match self {
            Case::PlainOff => "plain-off",
            Case::PlainPrefix => "plain-prefix",
            Case::ModelsOff => "models-off",
            Case::ModelsPrefix => "models-prefix",
            Case::ModelsHeader => "models-header",
        }
    }

    /// The request every run of this case sends, with `extra` headers.
    fn request(self, addr: SocketAddr, extra: &[(&str, &str)]) -> Vec<u8> {
        let body = request::chat_body(AFFINITY_KIB);
        let mut headers = extra.to_vec();
        if self == Case::ModelsHeader {
            headers.push(SESSION_HEADER);
        }
        request::raw_with_headers(addr, &body, &headers)
    }
}

/// Meridian's instructions per request in each `Case`.
pub struct AffinityCost {
    pub cases: Vec<CaseRuns>,
}

pub struct CaseRuns {
    pub case: Case,
    pub warmup: u64,
    pub requests: u64,
    pub runs: Vec<f64>,
    /// What the upstream regions received (a sentence, the configuration not named).
    pub upstream: String,
    /// What Meridian's `/metrics` counted of affinity over the warm-up and runs.
    pub decisions: Decisions,
    /// The `x-meridian-decision` of one more request after the runs.
    pub decision: String,
}

/// Meridian's affinity counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Decisions {
    pub hits: u64,
    pub new_keys: u64,
    pub moves: u64,
    /// The moves by reason, those counted only.
    pub reasons: Vec<(String, u64)>,
}

impl Decisions {
    fn total(&self) -> u64 {
        self.hits + self.new_keys + self.moves
    }
}

/// Each `Case` in turn (`Case::SMOKE` only in a smoke run), one Meridian process under
/// callgrind each, in front of fresh mock regions that read every body: the warm-up, then
/// `opts.instr_runs` runs of `opts.instr_requests` 1 KiB chat completions, all with the
/// same key.
pub async fn measure_affinity(setup: &Setup, opts: &Opts) -> Result<AffinityCost, String> {
    let wanted: &[Case] = if opts.smoke { &Case::SMOKE } else { &Case::ALL };
    let mut cases = Vec::new();
    for &case in wanted {
        cases.push(measure_case(case, setup, opts).await?);
    }
    Ok(AffinityCost { cases })
}

async fn measure_case(case: Case, setup: &Setup, opts: &Opts) -> Result<CaseRuns, String> {
    // Fresh regions, so their counters hold this configuration's requests only.
    let regions = upstream::body_reading().await?;
    let addrs: Vec<SocketAddr> = regions.iter().map(|r| r.addr()).collect();
    let dir = setup
        .dir
        .join(format!("meridian-affinity-{}-callgrind", case.tag()));
    let wrapper = wrapper(&dir, opts)?;
    let variant = Variant {
        models: case.models(),
        affinity: case.affinity(),
        ..Variant::DEFAULT
    };
    let tag = format!("callgrind-affinity-{}", case.tag());
    let r = systems::start_meridian_with(setup, &addrs, &tag, &wrapper, variant).await?;
    let admin = r.admin.ok_or("meridian without an admin address")?;
    let mut cg = Callgrind::new(r, dir, format!("meridian {}", case.name()), opts)?;
    let warmup = per_size(opts.instr_warmup, AFFINITY_KIB);
    let requests = per_size(opts.instr_requests, AFFINITY_KIB);
    let job = Job {
        connections: AFFINITY_CONNECTIONS,
        ..Job::sized(case.request(cg.r.addr, &[]), u64::from(AFFINITY_KIB))
    };
    let runs = cg
        .count_job(&job, warmup, requests, opts)
        .await
        .map_err(|e| format!("{}: {e}", cg.label))?
        .into_iter()
        .map(|r| r.per_request)
        .collect();
    let sent = warmup + requests * u64::from(opts.instr_runs);
    let decisions = parse_decisions(&metrics(admin).await?);
    check_decisions(case, &decisions, sent)?;
    // One more, asking for the decision header: which source the key came from.
    let decision = decision(case, cg.r.addr).await?;
    let sent = sent + 1;
    // Stops Meridian; the regions' counters are read after its last request.
    drop(cg);
    let line = check_upstream(&regions, case.models(), sent, &[AFFINITY_KIB])?;
    Ok(CaseRuns {
        case,
        warmup,
        requests,
        runs,
        // The check names the models; the case's name says them too.
        upstream: line
            .split_once(": ")
            .map_or(line.clone(), |(_, rest)| rest.to_string()),
        decisions,
        decision,
    })
}

/// The `x-meridian-decision` of one more request of `case` with `x-meridian-debug: 1`,
/// checked: with affinity on a hit keyed by `case.source()`, off no affinity at all.
async fn decision(case: Case, addr: SocketAddr) -> Result<String, String> {
    let raw = case.request(addr, &[("x-meridian-debug", "1"), ("connection", "close")]);
    let exchange = async {
        let mut conn = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect {addr}: {e}"))?;
        conn.write_all(&raw).await.map_err(|e| e.to_string())?;
        let mut answer = Vec::new();
        conn.read_to_end(&mut answer)
            .await
            .map_err(|e| e.to_string())?;
        Ok::<_, String>(answer)
    };
    let answer = tokio::time::timeout(Duration::from_secs(60), exchange)
        .await
        .map_err(|_| "the debug request took longer than 60 s".to_string())??;
    let text = String::from_utf8_lossy(&answer);
    let head = text.split("\r\n\r\n").next().unwrap_or("");
    let found = head.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.eq_ignore_ascii_case("x-meridian-decision")
            .then(|| value.trim().to_string())
    });
    let d = found.ok_or_else(|| {
        format!(
            "meridian {}: no x-meridian-decision in {:?}",
            case.name(),
            head.lines().next().unwrap_or("")
        )
    })?;
    check_decision(case, &d)?;
    Ok(d)
}

fn check_decision(case: Case, d: &str) -> Result<(), String> {
    let ok = match case.source() {
        None => !d.contains("affinity="),
        Some(source) => d.contains(&format!("; affinity=hit key={source}")),
    };
    if !ok {
        let want = case.source().map_or("no affinity".to_string(), |s| {
            format!("affinity=hit key={s}")
        });
        return Err(format!(
            "meridian {}: x-meridian-decision {d:?}, not {want}",
            case.name()
        ));
    }
    Ok(())
}

/// Off: no affinity decision at all. On: one for every request sent, so every request had
/// the key (a request without one is routed as any other and counted nowhere).
fn check_decisions(case: Case, d: &Decisions, sent: u64) -> Result<(), String> {
    let want = match case.affinity() {
        Affinity::Off => 0,
        Affinity::Default | Affinity::BodyAlways => sent,
    };
    if d.total() != want {
        return Err(format!(
            "meridian {}: {} affinity decisions ({} hits, {} new keys, {} moves) over {sent} \
             requests, not {want}",
            case.name(),
            d.total(),
            d.hits,
            d.new_keys,
            d.moves
        ));
    }
    Ok(())
}

fn parse_decisions(text: &str) -> Decisions {
    let value = |l: &str| {
        l.rsplit(' ')
            .next()
            .and_then(|v| v.parse::<f64>().ok())
            .map_or(0, |v| v as u64)
    };
    let mut d = Decisions::default();
    for l in text.lines() {
        if l.starts_with("meridian_affinity_hits_total ") {
            d.hits += value(l);
        } else if l.starts_with("meridian_affinity_new_keys_total ") {
            d.new_keys += value(l);
        } else if let Some(rest) = l.strip_prefix("meridian_affinity_moves_total{") {
            let n = value(l);
            d.moves += n;
            let reason = rest
                .split_once("reason=\"")
                .and_then(|(_, r)| r.split_once('"'))
                .map_or("?", |(r, _)| r);
            if n > 0 {
                d.reasons.push((reason.to_string(), n));
            }
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_on_case_is_measured_from_the_off_case_with_its_models() {
        for c in Case::ALL {
            match c.baseline() {
                None => assert_eq!(c.affinity(), Affinity::Off),
                Some(b) => {
                    assert_eq!(b.affinity(), Affinity::Off);
                    assert_eq!(b.models(), c.models());
                }
            }
        }
        let addr = "127.0.0.1:1".parse().expect("addr");
        let raw = Case::ModelsHeader.request(addr, &[("x-meridian-debug", "1")]);
        let raw = String::from_utf8(raw).expect("utf-8");
        assert!(raw.contains("\r\nx-meridian-debug: 1\r\nx-session-id: bench-session-1\r\n"));
        let raw = Case::ModelsPrefix.request(addr, &[]);
        assert!(!String::from_utf8(raw)
            .expect("utf-8")
            .contains("x-session-id"));
    }

    #[test]
    fn the_decision_header_names_the_hit_and_its_source() {
        let hit = "us-east-1=0.91*,eu-west-1=0.80; affinity=hit key=header; model=llama-3.1-70b";
        assert!(check_decision(Case::ModelsHeader, hit).is_ok());
        assert!(check_decision(Case::ModelsPrefix, hit).is_err());
        assert!(check_decision(Case::ModelsOff, hit).is_err());
        assert!(check_decision(Case::ModelsOff, "us-east-1=0.91*; model=llama-3.1-70b").is_ok());
        let new = "us-east-1=0.91*; affinity=new key=prefix";
        assert!(check_decision(Case::PlainPrefix, new).is_err());
    }

    #[test]
    fn reads_meridians_affinity_counters() {
        let text = "# HELP meridian_affinity_hits_total x\n\
            meridian_affinity_hits_total 997\n\
            meridian_affinity_new_keys_total 1\n\
            meridian_affinity_moves_total{reason=\"geo\"} 0\n\
            meridian_affinity_moves_total{reason=\"saturated\"} 2\n\
            meridian_affinity_keys 1\n";
        let d = parse_decisions(text);
        assert_eq!(
            d,
            Decisions {
                hits: 997,
                new_keys: 1,
                moves: 2,
                reasons: vec![("saturated".into(), 2)],
            }
        );
        assert!(check_decisions(Case::ModelsPrefix, &d, 1000).is_ok());
        assert!(check_decisions(Case::ModelsPrefix, &d, 1001).is_err());
        assert!(check_decisions(Case::ModelsOff, &d, 1000).is_err());
        assert!(check_decisions(Case::PlainOff, &Decisions::default(), 1000).is_ok());
    }
}
