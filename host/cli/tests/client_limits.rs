//! A hostile client against a real `reyna serve` on loopback: slow headers
//! (slowloris), idle keep-alive, a trickled body, more connections than the
//! limit, more live streams than a token or the host may hold, and request
//! bodies beyond the memory budget. Each limit is set small in the test's
//! config file; every wait is on the event itself (a read, EOF, a response)
//! under a bound.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::time::timeout;

mod common;

use common::{Host, client, get_json};

fn addr(host: &Host) -> String {
    host.url.trim_start_matches("http://").to_owned()
}

/// Reads until the peer closes (EOF or reset), within `bound`; what arrived.
async fn read_until_closed(stream: &mut TcpStream, bound: Duration) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    let result = timeout(bound, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(
        result.is_ok(),
        "the host did not close the connection within {bound:?}; got {:?}",
        String::from_utf8_lossy(&got)
    );
    got
}

/// Reads until `needle` has arrived (bounded); everything read.
async fn read_until(stream: &mut TcpStream, needle: &[u8], bound: Duration) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    timeout(bound, async {
        while !got.windows(needle.len()).any(|w| w == needle) {
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed before {:?}", String::from_utf8_lossy(needle));
            got.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "no {:?} within {bound:?}; got {:?}",
            String::from_utf8_lossy(needle),
            String::from_utf8_lossy(&got)
        )
    });
    got
}

/// Status code and problem `type` slug (if any) of a raw HTTP response.
fn status_and_kind(response: &[u8]) -> (u16, Option<String>) {
    let text = String::from_utf8_lossy(response);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {text:?}"));
    let kind = text.split_once("\r\n\r\n").and_then(|(_, body)| {
        let problem: Value = serde_json::from_str(body).ok()?;
        Some(kind_of(&problem))
    });
    (status, kind)
}

fn kind_of(problem: &Value) -> String {
    problem["type"]
        .as_str()
        .and_then(|t| t.rsplit('/').next())
        .unwrap_or_default()
        .to_owned()
}

/// Sends one byte every `every` until the host closes the connection (or
/// `bound` passes: `None`). `connected` is told once the first byte is out.
async fn trickle_headers(
    addr: String,
    every: Duration,
    bound: Duration,
    connected: tokio::sync::mpsc::Sender<()>,
) -> Option<Duration> {
    let started = Instant::now();
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let prefix = b"GET /healthz HTTP/1.1\r\nhost: x\r\nx-slow: ";
    let mut sent = 0usize;
    let mut buf = [0u8; 1024];
    loop {
        if started.elapsed() > bound {
            return None;
        }
        let byte = prefix.get(sent).copied().unwrap_or(b'a');
        if stream.write_all(&[byte]).await.is_err() {
            return Some(started.elapsed());
        }
        if sent == 0 {
            let _ = connected.send(()).await;
        }
        sent += 1;
        match timeout(every, stream.read(&mut buf)).await {
            Err(_) => {}
            Ok(Ok(0) | Err(_)) => return Some(started.elapsed()),
            Ok(Ok(n)) => panic!(
                "the host answered headers that never ended: {:?}",
                String::from_utf8_lossy(&buf[..n])
            ),
        }
    }
}

/// The tenant's `text-input-v1` blobs (what clients post; plugins derive
/// other schemas, in their own time).
async fn blob_count(http: &reqwest::Client, host: &Host, token: &str) -> usize {
    let page = get_json(
        http,
        format!("{}/v1/blobs?schema=text-input-v1&limit=1000", host.url),
        token,
    )
    .await;
    page["items"].as_array().unwrap().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slow_headers_idle_keep_alive_and_trickled_bodies_are_cut_while_others_are_served() {
    const SLOW_CLIENTS: usize = 200;
    let header_timeout = Duration::from_secs(2);
    let dir = tempfile::tempdir().unwrap();
    let mut host = Host::with_config(
        dir.path(),
        "header-timeout = \"2s\"\nbody-timeout = \"2s\"\n",
    );
    let token = host.token();
    let http = client();

    // Slowloris: many connections sending a header byte every 250 ms.
    let (connected, mut ready) = tokio::sync::mpsc::channel(SLOW_CLIENTS);
    let slow: Vec<_> = (0..SLOW_CLIENTS)
        .map(|_| {
            tokio::spawn(trickle_headers(
                addr(&host),
                Duration::from_millis(250),
                Duration::from_secs(30),
                connected.clone(),
            ))
        })
        .collect();
    drop(connected);
    for _ in 0..SLOW_CLIENTS {
        timeout(Duration::from_secs(20), ready.recv())
            .await
            .expect("slow clients connect")
            .expect("a slow client stopped before sending");
    }
    // Meanwhile a normal client is served promptly.
    let started = Instant::now();
    let health = timeout(
        Duration::from_secs(5),
        http.get(format!("{}/healthz", host.url)).send(),
    )
    .await
    .expect("a normal request was not answered within 5 s during the slowloris")
    .unwrap();
    assert_eq!(health.status(), 200);
    let normal = started.elapsed();
    let created = http
        .post(format!("{}/v1/blobs", host.url))
        .bearer_auth(&token)
        .json(&json!({ "schema": "text-input-v1", "data": { "content": "served text" } }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let mut cut = Vec::new();
    for task in slow {
        let elapsed = timeout(Duration::from_secs(40), task)
            .await
            .expect("a slow client task did not end")
            .unwrap()
            .expect("a slow client was never disconnected");
        cut.push(elapsed);
    }
    let (first, last) = (
        cut.iter().min().copied().unwrap(),
        cut.iter().max().copied().unwrap(),
    );
    eprintln!(
        "slowloris: {SLOW_CLIENTS} clients cut after {first:?}..{last:?}; a normal request took {normal:?}"
    );
    assert!(
        first >= header_timeout - Duration::from_millis(300),
        "a slow client was cut after {first:?}, before the header timeout"
    );
    assert!(
        last <= header_timeout + Duration::from_secs(8),
        "a slow client was cut only after {last:?}"
    );

    // An idle keep-alive connection is closed after the header timeout too.
    let mut idle = TcpStream::connect(addr(&host)).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let answered = read_until(&mut idle, b"\r\n\r\n", Duration::from_secs(5)).await;
    assert_eq!(status_and_kind(&answered).0, 200);
    let idle_since = Instant::now();
    read_until_closed(&mut idle, header_timeout + Duration::from_secs(8)).await;
    assert!(idle_since.elapsed() >= header_timeout - Duration::from_millis(300));

    // A body trickled after complete headers: 408 `body-timeout`, nothing stored.
    let before = blob_count(&http, &host, &token).await;
    let body =
        json!({ "schema": "text-input-v1", "data": { "content": "never all sent" } }).to_string();
    let mut trickle = TcpStream::connect(addr(&host)).await.unwrap();
    trickle
        .write_all(
            format!(
                "POST /v1/blobs HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let started = Instant::now();
    let mut response = Vec::new();
    let mut buf = [0u8; 4096];
    for byte in body.as_bytes()[..body.len() - 1].iter() {
        if trickle.write_all(&[*byte]).await.is_err() {
            break;
        }
        match timeout(Duration::from_millis(250), trickle.read(&mut buf)).await {
            Err(_) => continue,
            Ok(Ok(0) | Err(_)) => break,
            Ok(Ok(n)) => {
                response.extend_from_slice(&buf[..n]);
                break;
            }
        }
    }
    response.extend(read_until_closed(&mut trickle, Duration::from_secs(10)).await);
    let took = started.elapsed();
    assert_eq!(
        status_and_kind(&response),
        (408, Some("body-timeout".to_owned())),
        "{:?}",
        String::from_utf8_lossy(&response)
    );
    assert!(
        took < Duration::from_secs(8),
        "the trickled body was cut only after {took:?}"
    );
    assert_eq!(blob_count(&http, &host, &token).await, before);
    host.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_limit_are_answered_503_and_closed() {
    const LIMIT: usize = 8;
    let dir = tempfile::tempdir().unwrap();
    let mut host = Host::with_config(
        dir.path(),
        &format!("max-connections = {LIMIT}\nheader-timeout = \"60s\"\n"),
    );
    // Fill the limit with served, idle keep-alive connections.
    let mut open = Vec::new();
    for _ in 0..LIMIT {
        let mut stream = TcpStream::connect(addr(&host)).await.unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let answer = read_until(&mut stream, b"\r\n\r\n", Duration::from_secs(10)).await;
        assert_eq!(status_and_kind(&answer).0, 200);
        open.push(stream);
    }
    // One more: 503 `too-many-connections` with Retry-After, then closed.
    let mut extra = TcpStream::connect(addr(&host)).await.unwrap();
    let refused = read_until_closed(&mut extra, Duration::from_secs(10)).await;
    let text = String::from_utf8_lossy(&refused).to_lowercase();
    assert_eq!(
        status_and_kind(&refused),
        (503, Some("too-many-connections".to_owned())),
        "{text}"
    );
    assert!(text.contains("retry-after: 1"), "{text}");
    // The connections inside the limit are still served.
    let first = &mut open[0];
    first
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let answer = read_until(first, b"\r\n\r\n", Duration::from_secs(10)).await;
    assert_eq!(status_and_kind(&answer).0, 200);
    // Closing one frees its slot: a new connection is served once the host
    // has seen the close (each refused try is answered at once).
    drop(open.pop());
    let served = timeout(Duration::from_secs(20), async {
        loop {
            let mut stream = TcpStream::connect(addr(&host)).await.unwrap();
            if stream
                .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
                .await
                .is_err()
            {
                continue;
            }
            let answer = read_until_closed(&mut stream, Duration::from_secs(10)).await;
            if status_and_kind(&answer).0 == 200 {
                return;
            }
        }
    })
    .await;
    assert!(served.is_ok(), "no connection was served after one closed");
    // A graceful stop closes the idle connections and exits.
    host.stop();
}

async fn open_events(http: &reqwest::Client, host: &Host, token: &str) -> reqwest::Response {
    http.get(format!("{}/v1/events", host.url))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

async fn assert_too_many_streams(response: reqwest::Response, scope: &str) {
    assert_eq!(response.status(), 429);
    let retry = response
        .headers()
        .get("retry-after")
        .expect("a Retry-After header")
        .to_str()
        .unwrap()
        .parse::<u64>()
        .unwrap();
    assert!(retry >= 1);
    let problem: Value = response.json().await.unwrap();
    assert_eq!(kind_of(&problem), "too-many-streams", "{problem}");
    assert!(
        problem["detail"].as_str().unwrap().contains(scope),
        "{problem}"
    );
}

/// A text-input-v1 body of `len` bytes or more. Content holds at most 50,000
/// characters, so past 40,000 the rest is JSON whitespace inside `data`,
/// which the blob keeps as sent.
fn text_blob(len: usize) -> String {
    let content = "x".repeat(len.min(40_000));
    let padding = " ".repeat(len.saturating_sub(content.len()));
    format!(r#"{{"schema":"text-input-v1","data":{{"content":"{content}"{padding}}}}}"#)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_streams_are_capped_per_token_and_in_total_and_bodies_by_a_memory_budget() {
    let dir = tempfile::tempdir().unwrap();
    let mut host = Host::with_config(
        dir.path(),
        "max-streams-per-token = 2\nmax-streams = 3\nsse-heartbeat = \"1s\"\n\
         max-body = \"600KiB\"\nmax-plugin = \"600KiB\"\nmax-body-memory = \"1MiB\"\n",
    );
    let admin = host.token();
    let http = client();
    let tenant = http
        .post(format!("{}/v1/tenants", host.url))
        .bearer_auth(&admin)
        .json(&json!({ "id": "other" }))
        .send()
        .await
        .unwrap();
    assert_eq!(tenant.status(), 201);
    let created = http
        .post(format!("{}/v1/tokens", host.url))
        .bearer_auth(&admin)
        .json(&json!({ "tenant": "other", "role": "writer", "name": "other" }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let other = created.json::<Value>().await.unwrap()["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let blob: Value = http
        .post(format!("{}/v1/blobs", host.url))
        .bearer_auth(&admin)
        .json(&json!({ "schema": "text-input-v1", "data": { "content": "alpha beta gamma" } }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let derived = format!(
        "{}/v1/blobs/{}/derived?wait=30",
        host.url,
        blob["id"].as_str().unwrap()
    );

    // The admin token's two slots.
    let first = open_events(&http, &host, &admin).await;
    assert_eq!(first.status(), 200);
    let second = open_events(&http, &host, &admin).await;
    assert_eq!(second.status(), 200);
    // A third stream, or a long-poll, is refused for that token.
    assert_too_many_streams(
        open_events(&http, &host, &admin).await,
        "max-streams-per-token",
    )
    .await;
    let poll = http.get(&derived).bearer_auth(&admin).send().await.unwrap();
    assert_too_many_streams(poll, "max-streams-per-token").await;
    // Without `wait` the same request is no long-poll and is answered.
    let plain = http
        .get(derived.trim_end_matches("?wait=30"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), 200);
    // Another token is not held by the first one's cap...
    let theirs = open_events(&http, &host, &other).await;
    assert_eq!(theirs.status(), 200);
    // ...but the host's total is 3.
    assert_too_many_streams(open_events(&http, &host, &other).await, "max-streams").await;

    // Closing a stream frees its slot once the host sees the client go.
    drop(first);
    let reopened = timeout(Duration::from_secs(20), async {
        loop {
            let response = open_events(&http, &host, &admin).await;
            if response.status() == 200 {
                return response;
            }
            assert_eq!(response.status(), 429);
        }
    })
    .await
    .expect("the closed stream's slot was never freed");
    drop((second, theirs, reopened));

    // Body memory budget (1 MiB): a 550 KiB body being received holds its
    // share; a second one does not fit (503 server-busy, nothing stored);
    // a small one does; once the first is done the second fits.
    let before = blob_count(&http, &host, &admin).await;
    let held = text_blob(550 * 1024);
    let mut holder = TcpStream::connect(addr(&host)).await.unwrap();
    holder
        .write_all(
            format!(
                "POST /v1/blobs HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {admin}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nexpect: 100-continue\r\nconnection: close\r\n\r\n",
                held.len()
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    // `100 Continue` comes when the handler starts reading the body, after
    // the body's budget was taken.
    read_until(
        &mut holder,
        b"100 Continue\r\n\r\n",
        Duration::from_secs(10),
    )
    .await;

    let refused_text = text_blob(550 * 1024 - 7);
    let refused = http
        .post(format!("{}/v1/blobs", host.url))
        .bearer_auth(&admin)
        .header("content-type", "application/json")
        .body(refused_text.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.headers()["retry-after"], "1");
    let problem: Value = refused.json().await.unwrap();
    assert_eq!(kind_of(&problem), "server-busy", "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("max-body-memory")
    );
    let small = http
        .post(format!("{}/v1/blobs", host.url))
        .bearer_auth(&other)
        .header("content-type", "application/json")
        .body(text_blob(10 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(small.status(), 201, "a body within the budget is accepted");
    assert_eq!(
        blob_count(&http, &host, &admin).await,
        before,
        "the refused body stored nothing"
    );

    holder.write_all(held.as_bytes()).await.unwrap();
    let answer = read_until_closed(&mut holder, Duration::from_secs(30)).await;
    assert_eq!(
        status_and_kind(&answer).0,
        201,
        "{:?}",
        String::from_utf8_lossy(&answer)
    );
    let again = http
        .post(format!("{}/v1/blobs", host.url))
        .bearer_auth(&admin)
        .header("content-type", "application/json")
        .body(refused_text)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 201, "the budget was given back");
    assert_eq!(blob_count(&http, &host, &admin).await, before + 2);
    host.stop();
}
