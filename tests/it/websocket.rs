//! WebSocket upgrades (as the OpenAI Realtime API uses them) with the `websockets`
//! library's own client and server: the upgrade reaches the chosen region, messages echo
//! both ways, and a connection the region cuts after the upgrade is not retried on
//! another region.

use crate::common::*;

/// A WebSocket echo server (argv[1] names it) that also answers `GET /health` with how
/// many upgrades it accepted; the message `die` makes it drop the connection with no
/// close frame.
const SERVER: &str = r#"
import asyncio, json, sys
from websockets.asyncio.server import serve
name = sys.argv[1]
upgrades = 0
async def echo(ws):
    async for msg in ws:
        if msg == "die":
            ws.transport.abort()
            return
        await ws.send(f"{name}:{msg}")
def process_request(connection, request):
    global upgrades
    if request.path == "/health":
        return connection.respond(200, json.dumps({"upgrades": upgrades}))
    upgrades += 1
    return None
async def main():
    async with serve(echo, "127.0.0.1", 0, process_request=process_request) as server:
        print(server.sockets[0].getsockname()[1], flush=True)
        await asyncio.Future()
asyncio.run(main())
"#;

/// Connects to argv[1], echoes three messages, then sends `die`; prints what it saw.
const CLIENT: &str = r#"
import asyncio, json, sys
from websockets.asyncio.client import connect
async def main():
    out = {}
    ws = await connect(sys.argv[1] + "/v1/realtime?model=gpt-realtime", open_timeout=10)
    out["region"] = ws.response.headers.get("x-meridian-region")
    out["echo"] = []
    for m in ("one", "two", "three"):
        await ws.send(m)
        out["echo"].append(await asyncio.wait_for(ws.recv(), 10))
    await ws.send("die")
    try:
        await asyncio.wait_for(ws.recv(), 10)
        out["after_die"] = "a message"
    except Exception as e:
        out["after_die"] = type(e).__name__
    print(json.dumps(out))
asyncio.run(main())
"#;

async fn upgrades(server: &PyServer) -> u64 {
    let body: serde_json::Value = client()
        .get(format!("{}/health", server.url("http")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["upgrades"].as_u64().expect("upgrades")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websockets_pass_through_and_an_upgraded_connection_is_never_retried() {
    let Some(python) = h2_python() else { return };
    let cheap = PyServer::start(&python, SERVER, &["ap-south-1"]).await;
    let other = PyServer::start(&python, SERVER, &["me-south-1"]).await;
    let cfg = TestConfig::new()
        .region("ap-south-1", &[cheap.url("http")], 0.1, 1, "")
        .region("me-south-1", &[other.url("http")], 0.4, 1, "");
    let m = Meridian::start(&cfg).await;
    m.wait_health("ap-south-1", true).await;
    m.wait_health("me-south-1", true).await;

    let out = run_json(&python, CLIENT, &[&format!("ws://{}", m.proxy)]).await;
    assert_eq!(out["region"], "ap-south-1", "{out}");
    assert_eq!(
        out["echo"],
        serde_json::json!(["ap-south-1:one", "ap-south-1:two", "ap-south-1:three"])
    );
    assert_eq!(out["after_die"], "ConnectionClosedError", "{out}");
    assert_eq!(upgrades(&cheap).await, 1);
    assert_eq!(
        upgrades(&other).await,
        0,
        "the cut connection went nowhere else"
    );
}
