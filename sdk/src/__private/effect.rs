//! The `effect` world's bindings, export glue and the HTTP client over
//! `wasi:http/outgoing-handler`.

#[allow(missing_docs, unsafe_code, clippy::all)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "reyna:plugin/effect",
        path: "../wit",
        pub_export_macro: true,
        export_macro_name: "__reyna_export_effect",
        default_bindings_module: "reyna_sdk::__private::effect::bindings",
        runtime_path: "reyna_sdk::__private::wit_bindgen::rt",
        generate_all,
    });
}

pub use bindings::__reyna_export_effect as export;
pub use bindings::Guest;
pub use bindings::reyna::plugin::types::Event as WitEvent;

world_glue!();

use crate::context::HostCalls;
use crate::{Effect, HttpRequest, HttpResponse};

struct EffectHost;

impl HostCalls for EffectHost {
    fn log(&mut self, level: LogLevel, message: &str) {
        log(level, message)
    }
    fn config(&mut self, key: &str) -> Option<String> {
        config(key)
    }
    fn get_blob(&mut self, id: &str) -> Result<Option<Blob>, Error> {
        get_blob(id)
    }
    fn query_blobs(&mut self, schema: &str, filter: &str) -> Result<Vec<Blob>, Error> {
        query_blobs(schema, filter)
    }
    fn call_effect(&mut self, name: &str, _request: &[u8]) -> Result<Vec<u8>, Error> {
        Err(Error::Fatal(format!(
            "effects cannot call other effects (tried `{name}`)"
        )))
    }
    fn http(&mut self, request: &HttpRequest) -> Result<HttpResponse, Error> {
        send(request)
    }
    fn report_usage(&mut self, unit: &str, amount: u64) -> Result<(), Error> {
        bindings::reyna::plugin::usage::report(unit, amount).map_err(from_wit_error)
    }
}

/// Runs effect `E`'s `perform`.
pub fn perform<E: Effect>(request: Vec<u8>) -> Result<Vec<u8>, GuestError> {
    super::run_perform::<E>(request, &mut EffectHost).map_err(to_wit_error)
}

/// Runs effect `E`'s `deliver`.
pub fn deliver<E: Effect>(event: WitEvent) -> Result<Vec<u8>, GuestError> {
    super::run_deliver::<E>(from_wit_event(event), &mut EffectHost).map_err(to_wit_error)
}

fn send(request: &HttpRequest) -> Result<HttpResponse, Error> {
    use bindings::wasi::http::outgoing_handler;
    use bindings::wasi::http::types::{Fields, Method, OutgoingBody, OutgoingRequest, Scheme};
    use bindings::wasi::io::streams::StreamError;

    let (scheme, authority, path) = request.url_parts()?;
    let refused = |what: &str, e: &dyn std::fmt::Debug| Error::Fatal(format!("{what}: {e:?}"));

    let entries: Vec<(String, Vec<u8>)> = request
        .headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.as_bytes().to_vec()))
        .collect();
    let headers = Fields::from_list(&entries).map_err(|e| refused("invalid request header", &e))?;
    let outgoing = OutgoingRequest::new(headers);
    let method = match request.method.to_ascii_uppercase().as_str() {
        "GET" => Method::Get,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "DELETE" => Method::Delete,
        "PATCH" => Method::Patch,
        "HEAD" => Method::Head,
        other => Method::Other(other.to_owned()),
    };
    outgoing
        .set_method(&method)
        .map_err(|()| Error::Fatal(format!("invalid method `{}`", request.method)))?;
    let scheme = if scheme == "https" {
        Scheme::Https
    } else {
        Scheme::Http
    };
    outgoing
        .set_scheme(Some(&scheme))
        .map_err(|()| Error::Fatal("invalid scheme".to_owned()))?;
    outgoing
        .set_authority(Some(authority))
        .map_err(|()| Error::Fatal(format!("invalid authority `{authority}`")))?;
    outgoing
        .set_path_with_query(Some(path))
        .map_err(|()| Error::Fatal(format!("invalid path `{path}`")))?;

    let body = outgoing
        .body()
        .map_err(|()| Error::Fatal("request body unavailable".to_owned()))?;
    // The host refuses hosts that are not allowed here, before anything is sent.
    let future =
        outgoing_handler::handle(outgoing, None).map_err(|e| http_error("request refused", &e))?;
    {
        let stream = body
            .write()
            .map_err(|()| Error::Fatal("request body stream unavailable".to_owned()))?;
        for chunk in request.body.chunks(4096) {
            stream
                .blocking_write_and_flush(chunk)
                .map_err(|e| Error::Retryable(format!("writing request body failed: {e:?}")))?;
        }
    }
    OutgoingBody::finish(body, None)
        .map_err(|e| http_error("finishing request body failed", &e))?;

    future.subscribe().block();
    let response = match future.get() {
        Some(Ok(Ok(response))) => response,
        Some(Ok(Err(code))) => return Err(http_error("request failed", &code)),
        Some(Err(())) | None => return Err(Error::Fatal("response was already taken".to_owned())),
    };
    let status = response.status();
    let headers = response
        .headers()
        .entries()
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
        .collect();
    let incoming = response
        .consume()
        .map_err(|()| Error::Fatal("response body unavailable".to_owned()))?;
    let mut body = Vec::new();
    {
        let stream = incoming
            .stream()
            .map_err(|()| Error::Fatal("response body stream unavailable".to_owned()))?;
        loop {
            match stream.blocking_read(64 * 1024) {
                Ok(chunk) => body.extend_from_slice(&chunk),
                Err(StreamError::Closed) => break,
                Err(StreamError::LastOperationFailed(e)) => {
                    return Err(Error::Retryable(format!(
                        "reading response body failed: {}",
                        e.to_debug_string()
                    )));
                }
            }
        }
    }
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

/// Network-level failures are worth a retry; a refusal by the host's policy
/// (`HTTP-request-denied`) is not.
fn http_error(what: &str, code: &dyn std::fmt::Debug) -> Error {
    let text = format!("{code:?}");
    if text.contains("HttpRequestDenied") {
        Error::Fatal(format!(
            "{what}: the host refused this request (not in allowed-hosts?): {text}"
        ))
    } else {
        Error::Retryable(format!("{what}: {text}"))
    }
}
