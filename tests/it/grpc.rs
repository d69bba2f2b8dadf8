//! gRPC through Meridian with grpcio's own client and server (no generated code: raw-bytes
//! methods): h2c from the client (`listen.h2c`), h2c to the region (`protocol: h2`), the
//! region probed with the gRPC health protocol (`probe: grpc`). Trailers (grpc-status,
//! grpc-message, the server's own trailing metadata) arrive intact, OK or not; a server
//! stream streams; a call fails over from a region that refuses connections; Meridian's
//! own refusals are gRPC statuses the client reads.

use crate::common::*;
use crate::http2::with_listen;
use std::path::PathBuf;

/// A gRPC server (argv[1] names it): `Say` echoes with a trailer naming the server,
/// `Fail` aborts with RESOURCE_EXHAUSTED, `Tokens` streams three messages, and the
/// standard health check answers SERVING.
const SERVER: &str = r#"
import sys, grpc
from concurrent import futures
name = sys.argv[1]
def say(req, ctx):
    ctx.set_trailing_metadata((("x-served-by", name),))
    return b"echo:" + req
def fail(req, ctx):
    ctx.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "the model is out of KV cache")
def tokens(req, ctx):
    for t in (b"one", b"two", b"three"):
        yield t
def dies(req, ctx):
    # One message, then the server process dies mid-stream, as a crashed engine does.
    yield b"first"
    import os, time
    time.sleep(0.3)
    os._exit(1)
def health(req, ctx):
    return b"\x08\x01"  # HealthCheckResponse{status: SERVING}
unary = {"/meridian.test.Echo/Say": say, "/meridian.test.Echo/Fail": fail,
         "/grpc.health.v1.Health/Check": health}
class Handler(grpc.GenericRpcHandler):
    def service(self, call):
        if call.method in unary:
            return grpc.unary_unary_rpc_method_handler(unary[call.method])
        if call.method == "/meridian.test.Echo/Tokens":
            return grpc.unary_stream_rpc_method_handler(tokens)
        if call.method == "/meridian.test.Echo/Dies":
            return grpc.unary_stream_rpc_method_handler(dies)
        return None
server = grpc.server(futures.ThreadPoolExecutor(4))
server.add_generic_rpc_handlers((Handler(),))
print(server.add_insecure_port("127.0.0.1:0"), flush=True)
server.start()
server.wait_for_termination()
"#;

/// A gRPC client against argv[1]; argv[2] is `full` (every method), `say` (one call,
/// with argv[3:] as metadata key=value pairs), `say-big` (the same with a 4 KiB message)
/// or `say-tls` (over TLS, argv[3] the CA file). Prints what it saw as JSON.
const CLIENT: &str = r#"
import sys, json, grpc
target, mode = sys.argv[1], sys.argv[2]
if mode == "say-tls":
    # argv[3] is the CA file; the call goes over TLS (ALPN h2) to localhost.
    ca = open(sys.argv[3], "rb").read()
    meta = tuple(tuple(kv.split("=", 1)) for kv in sys.argv[4:])
    ch = grpc.secure_channel(target, grpc.ssl_channel_credentials(root_certificates=ca))
else:
    meta = tuple(tuple(kv.split("=", 1)) for kv in sys.argv[3:])
    ch = grpc.insecure_channel(target)
out = {}
def outcome(fn):
    try:
        resp, call = fn()
        return {"code": call.code().name, "resp": resp.decode(),
                "initial": dict(call.initial_metadata()),
                "trailing": dict(call.trailing_metadata())}
    except grpc.RpcError as e:
        return {"code": e.code().name, "details": e.details(),
                "initial": dict(e.initial_metadata() or ()),
                "trailing": dict(e.trailing_metadata() or ())}
say = ch.unary_unary("/meridian.test.Echo/Say")
payload = b"x" * 4096 if mode == "say-big" else b"hi"
out["say"] = outcome(lambda: say.with_call(payload, metadata=meta, timeout=10))
if mode == "full":
    fail = ch.unary_unary("/meridian.test.Echo/Fail")
    out["fail"] = outcome(lambda: fail.with_call(b"x", timeout=10))
    stream = ch.unary_stream("/meridian.test.Echo/Tokens")(b"x", timeout=10)
    out["tokens"] = [m.decode() for m in stream]
    out["tokens_code"] = stream.code().name
if mode == "dies":
    got = []
    stream = ch.unary_stream("/meridian.test.Echo/Dies")(b"x", timeout=10)
    try:
        for m in stream:
            got.append(m.decode())
        out["dies"] = {"got": got, "code": stream.code().name}
    except grpc.RpcError as e:
        out["dies"] = {"got": got, "code": e.code().name, "details": e.details()}
print(json.dumps(out))
"#;

fn grpc_region(cfg: TestConfig, name: &str, server: &PyServer, cost: f64) -> TestConfig {
    cfg.region(
        name,
        &[server.url("http")],
        cost,
        1,
        "protocol: h2\n    probe: grpc",
    )
}

async fn start_h2c(cfg: &TestConfig) -> Meridian {
    Meridian::start_with(with_listen(cfg, "  h2c: true\n".into()), &[]).await
}

async fn call(python: &PathBuf, m: &Meridian, mode: &str, meta: &[&str]) -> serde_json::Value {
    let target = m.proxy.to_string();
    let mut args = vec![target.as_str(), mode];
    args.extend_from_slice(meta);
    run_json(python, CLIENT, &args).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_calls_pass_through_with_their_trailers_ok_or_not() {
    let Some(python) = h2_python() else { return };
    let server = PyServer::start(&python, SERVER, &["ap-south-1"]).await;
    let m = start_h2c(&grpc_region(TestConfig::new(), "ap-south-1", &server, 0.3)).await;
    m.wait_health("ap-south-1", true).await;

    let out = call(&python, &m, "full", &[]).await;
    let say = &out["say"];
    assert_eq!(say["code"], "OK", "{out}");
    assert_eq!(say["resp"], "echo:hi");
    assert_eq!(
        say["trailing"]["x-served-by"], "ap-south-1",
        "the server's trailer: {out}"
    );
    assert_eq!(say["initial"]["x-meridian-region"], "ap-south-1");
    let fail = &out["fail"];
    assert_eq!(fail["code"], "RESOURCE_EXHAUSTED", "{out}");
    assert_eq!(fail["details"], "the model is out of KV cache");
    assert_eq!(out["tokens"], serde_json::json!(["one", "two", "three"]));
    assert_eq!(out["tokens_code"], "OK");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grpc_call_fails_over_from_a_region_refusing_connections() {
    let Some(python) = h2_python() else { return };
    let cheap = PyServer::start(&python, SERVER, &["ap-south-1"]).await;
    let other = PyServer::start(&python, SERVER, &["me-south-1"]).await;
    let cfg = grpc_region(TestConfig::new(), "ap-south-1", &cheap, 0.1);
    // Probed only at start-up, so the dead region is found by the call, not by a probe.
    let cfg = grpc_region(cfg, "me-south-1", &other, 0.4)
        .section("health_check", "  interval: 1h\n  timeout: 2s\n");
    let m = start_h2c(&cfg).await;
    m.wait_health("ap-south-1", true).await;
    m.wait_health("me-south-1", true).await;
    cheap.kill().await;

    let out = call(&python, &m, "say", &[]).await;
    let say = &out["say"];
    assert_eq!(say["code"], "OK", "{out}");
    assert_eq!(say["trailing"]["x-served-by"], "me-south-1", "{out}");
    assert_eq!(say["initial"]["x-meridian-region"], "me-south-1");
    assert_eq!(say["initial"]["x-meridian-attempts"], "2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meridian_s_own_refusals_are_grpc_statuses() {
    let Some(python) = h2_python() else { return };
    // A region whose port refuses connections: down from the first probe on.
    let dead = format!("http://{}", free_addr());
    let cfg = TestConfig::new()
        .region("ap-south-1", &[dead], 0.3, 1, "protocol: h2\n    probe: grpc")
        .section(
            "geo",
            "  header: x-geo-country\n  default: allow-all\n  rules:\n    - name: embargo\n      match: [KP]\n      deny: true\n",
        );
    let m = start_h2c(&cfg).await;
    m.wait_health("ap-south-1", false).await;

    let out = call(&python, &m, "say", &[]).await;
    assert_eq!(out["say"]["code"], "UNAVAILABLE", "{out}");
    let details = out["say"]["details"].as_str().unwrap_or_default();
    assert!(details.starts_with("no_eligible_region: "), "{out}");
    let out = call(&python, &m, "say", &["x-geo-country=KP"]).await;
    assert_eq!(out["say"]["code"], "PERMISSION_DENIED", "{out}");
    let details = out["say"]["details"].as_str().unwrap_or_default();
    assert!(details.starts_with("geo_denied: "), "{out}");

    // Anyone else still gets the OpenAI-shaped JSON error.
    let r = m.infer(&[]).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.error_type(), "no_eligible_region");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_over_tls_with_client_keys() {
    let Some(python) = h2_python() else { return };
    let server = PyServer::start(&python, SERVER, &["ap-south-1"]).await;
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, ca) = crate::http2::write_pki(dir.path(), &crate::https::pki());
    let tls = free_addr();
    let cfg = grpc_region(TestConfig::new(), "ap-south-1", &server, 0.3).section(
        "auth",
        "  env_keys:\n    - name: ci\n      value_env: GRPC_TEST_KEY\n",
    );
    let extra =
        format!("  proxy_tls:\n    addr: {tls}\n    cert_file: {cert}\n    key_file: {key}\n");
    let m = Meridian::start_with(
        with_listen(&cfg, extra),
        &[("GRPC_TEST_KEY".into(), "sk-grpc-test".into())],
    )
    .await;
    m.wait_health("ap-south-1", true).await;
    let target = format!("localhost:{}", tls.port());
    let tls_call = |meta: &'static [&'static str]| {
        let (python, target, ca) = (python.clone(), target.clone(), ca.clone());
        async move {
            let mut args = vec![target.as_str(), "say-tls", ca.as_str()];
            args.extend_from_slice(meta);
            run_json(&python, CLIENT, &args).await
        }
    };
    // gRPC clients send the key as metadata: `authorization: Bearer ...`.
    let out = tls_call(&["authorization=Bearer sk-grpc-test"]).await;
    let say = &out["say"];
    assert_eq!(say["code"], "OK", "{out}");
    assert_eq!(say["trailing"]["x-served-by"], "ap-south-1", "{out}");
    assert_eq!(say["initial"]["x-meridian-region"], "ap-south-1", "{out}");
    let out = tls_call(&[]).await;
    assert_eq!(out["say"]["code"], "UNAUTHENTICATED", "{out}");
    let details = out["say"]["details"].as_str().unwrap_or_default();
    assert!(details.starts_with("invalid_api_key: "), "{out}");
    let out = tls_call(&["authorization=Bearer sk-wrong"]).await;
    assert_eq!(out["say"]["code"], "UNAUTHENTICATED", "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_model_and_an_oversized_message_are_grpc_statuses_too() {
    let Some(python) = h2_python() else { return };
    let server = PyServer::start(&python, SERVER, &["ap-south-1"]).await;
    let cfg = grpc_region(TestConfig::new(), "ap-south-1", &server, 0.3)
        .section("models", "  - name: llama-3.1-70b\n")
        .section("limits", "  max_request_body_bytes: 1024\n");
    let m = start_h2c(&cfg).await;
    m.wait_health("ap-south-1", true).await;

    let out = call(&python, &m, "say", &["x-meridian-model=llama-3.1-70b"]).await;
    assert_eq!(out["say"]["code"], "OK", "{out}");
    let out = call(&python, &m, "say", &["x-meridian-model=no-such-model"]).await;
    assert_eq!(out["say"]["code"], "NOT_FOUND", "{out}");
    let details = out["say"]["details"].as_str().unwrap_or_default();
    assert!(details.starts_with("model_not_found: "), "{out}");
    let out = call(&python, &m, "say-big", &["x-meridian-model=llama-3.1-70b"]).await;
    assert_eq!(out["say"]["code"], "RESOURCE_EXHAUSTED", "{out}");
    let details = out["say"]["details"].as_str().unwrap_or_default();
    assert!(details.starts_with("request_too_large: "), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grpc_stream_cut_by_its_region_ends_with_meridian_s_status() {
    let Some(python) = h2_python() else { return };
    let server = PyServer::start(&python, SERVER, &["ap-south-1"]).await;
    let m = start_h2c(&grpc_region(TestConfig::new(), "ap-south-1", &server, 0.3)).await;
    m.wait_health("ap-south-1", true).await;
    let out = call(&python, &m, "dies", &[]).await;
    let dies = &out["dies"];
    assert_eq!(dies["got"], serde_json::json!(["first"]), "{out}");
    assert_eq!(dies["code"], "UNAVAILABLE", "{out}");
    let details = dies["details"].as_str().unwrap_or_default();
    assert!(
        details.starts_with("upstream_stream_error: "),
        "Meridian's own trailers: {out}"
    );
}
