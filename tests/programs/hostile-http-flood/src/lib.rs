//! Test program `hostile-http-flood`: makes as many GET requests as it is
//! asked to, and follows redirects itself when asked to.
//!
//! Request `{"url": "...", "count": N, "follow": bool, "keep_going": bool}`:
//! GETs `url` `count` times (stopping at the first refusal or failure, or,
//! with `keep_going`, trying again after it: a guest looping on refusals)
//! and, with `follow`, requests a 3xx response's `location` itself. Returns
//! `{"statuses": [...], "failed": F}`, the status of every response it got
//! and how many requests failed. It logs every
//! URL it requests (through the host log and stdout), secrets included, so
//! tests can check the host redacts them, and logs the error of a failed
//! request, so tests can check what the guest saw.

use reyna_sdk::{Context, Effect, Error, HttpRequest};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct Request {
    url: String,
    #[serde(default = "one")]
    count: u32,
    #[serde(default)]
    follow: bool,
    #[serde(default)]
    keep_going: bool,
}

fn one() -> u32 {
    1
}

fn get(url: &str) -> HttpRequest {
    HttpRequest {
        method: "GET".to_owned(),
        url: url.to_owned(),
        headers: vec![],
        body: vec![],
    }
}

/// Sends a GET, logging the error the host gave, if any.
fn send(ctx: &mut Context<'_>, url: &str) -> Result<reyna_sdk::HttpResponse, Error> {
    ctx.http(&get(url))
        .inspect_err(|e| ctx.warn(&format!("GET {url} failed: {e}")))
}

#[derive(Debug)]
pub struct Flood;

impl Effect for Flood {
    fn perform(request: Vec<u8>, ctx: &mut Context<'_>) -> Result<Vec<u8>, Error> {
        let request: Request =
            serde_json::from_slice(&request).map_err(|e| Error::invalid_input(e.to_string()))?;
        let mut statuses = Vec::new();
        let mut failed: u64 = 0;
        for _ in 0..request.count {
            ctx.info(&format!("GET {}", request.url));
            println!("requesting {}", request.url);
            let response = match send(ctx, &request.url) {
                Ok(response) => response,
                Err(_) if request.keep_going => {
                    failed += 1;
                    continue;
                }
                Err(e) => return Err(e),
            };
            statuses.push(response.status);
            if request.follow && (300..400).contains(&response.status) {
                let location = response
                    .headers
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("location"))
                    .map(|(_, v)| v.clone())
                    .ok_or_else(|| Error::fatal("redirect without location"))?;
                let followed = send(ctx, &location)?;
                statuses.push(followed.status);
            }
        }
        serde_json::to_vec(&serde_json::json!({ "statuses": statuses, "failed": failed }))
            .map_err(|e| Error::fatal(e.to_string()))
    }
}

reyna_sdk::export_effect!(Flood);
