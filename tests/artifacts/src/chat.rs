//! A loopback HTTP/1.1 server answering every request with one
//! OpenAI-style chat completion, token `usage` included: the model server
//! behind the `llm` effect in tests. It records every request it receives.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

/// One request the server received.
#[derive(Debug, Clone)]
pub struct Received {
    /// E.g. `POST /v1/chat/completions HTTP/1.1`.
    pub request_line: String,
    /// Header lines as sent.
    pub headers: Vec<String>,
    /// The body (de-chunked).
    pub body: String,
}

/// A running chat server; it stops with the test process.
#[derive(Debug, Clone)]
pub struct ChatServer {
    port: u16,
    received: Arc<Mutex<Vec<Received>>>,
}

/// The `prompt_tokens` of every completion [`ChatServer::start`] answers.
pub const PROMPT_TOKENS: u64 = 12;
/// The `completion_tokens` of every completion [`ChatServer::start`] answers
/// (its `total_tokens` is the sum of the two).
pub const COMPLETION_TOKENS: u64 = 7;

impl ChatServer {
    /// Starts a server on a free loopback port answering `answer` to every
    /// request, with a usage of [`PROMPT_TOKENS`] and [`COMPLETION_TOKENS`].
    pub fn start(answer: &str) -> std::io::Result<ChatServer> {
        Self::start_with_usage(answer, PROMPT_TOKENS, COMPLETION_TOKENS)
    }

    /// Starts a server answering `answer` to every request, each completion
    /// charging `prompt_tokens` and `completion_tokens` (`usage.total_tokens`:
    /// their sum).
    pub fn start_with_usage(
        answer: &str,
        prompt_tokens: u64,
        completion_tokens: u64,
    ) -> std::io::Result<ChatServer> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = received.clone();
        let total_tokens = prompt_tokens.saturating_add(completion_tokens);
        let reply = format!(
            r#"{{"id":"c1","object":"chat.completion","model":"local-model","choices":[{{"index":0,"message":{{"role":"assistant","content":{}}},"finish_reason":"stop"}}],"usage":{{"prompt_tokens":{prompt_tokens},"completion_tokens":{completion_tokens},"total_tokens":{total_tokens}}}}}"#,
            json_string(answer)
        );
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                let (log, reply) = (log.clone(), reply.clone());
                std::thread::spawn(move || {
                    if let Ok(request) = serve(&stream, &reply) {
                        log.lock().unwrap_or_else(|e| e.into_inner()).push(request);
                    }
                });
            }
        });
        Ok(ChatServer { port, received })
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:<port>/v1/chat/completions`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/v1/chat/completions", self.port)
    }

    /// Every request received so far.
    pub fn received(&self) -> Vec<Received> {
        self.received
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

fn serve(stream: &std::net::TcpStream, reply: &str) -> std::io::Result<Received> {
    let mut reader = BufReader::new(stream);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut headers = Vec::new();
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let line = line.trim_end().to_owned();
        if line.is_empty() {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
        headers.push(line);
    }
    let chunked = headers
        .iter()
        .any(|h| h.eq_ignore_ascii_case("transfer-encoding: chunked"));
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    if chunked {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size)?;
            let size = usize::from_str_radix(size.trim(), 16)
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            let mut chunk = vec![0; size + 2]; // data + CRLF
            reader.read_exact(&mut chunk)?;
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    }
    let response = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{reply}",
        reply.len()
    );
    let mut stream = reader.into_inner();
    stream.write_all(response.as_bytes())?;
    stream.flush()?;
    Ok(Received {
        request_line: request_line.trim_end().to_owned(),
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// `text` as a JSON string literal.
fn json_string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
