//! `webhook` (effect): POSTs JSON to the operator-configured `url`.
//!
//! `perform(request)` posts the request bytes; as a sink (`deliver`) it posts
//! the event as JSON. Config: `url` (required), `authorization` (optional
//! header value, e.g. `Bearer ...`; a secret, set by the operator). Returns a
//! receipt `{"status": <code>, "bytes": <sent>}`. 429 and 5xx are retryable.

use reyna_sdk::{Context, Effect, Error, HttpRequest};

/// The effect.
#[derive(Debug)]
pub struct Webhook;

impl Effect for Webhook {
    fn perform(request: Vec<u8>, ctx: &mut Context<'_>) -> Result<Vec<u8>, Error> {
        let url = ctx
            .config("url")
            .ok_or_else(|| Error::fatal("config `url` is not set"))?;
        let bytes = request.len();
        let mut http =
            HttpRequest::post_json(&url, request).header("user-agent", "reyna-webhook/1");
        if let Some(auth) = ctx.config("authorization") {
            http = http.header("authorization", &auth);
        }
        let response = ctx.http(&http)?.error_for_status()?;
        ctx.info(&format!(
            "delivered {bytes} bytes, HTTP {}",
            response.status
        ));
        serde_json::to_vec(&serde_json::json!({ "status": response.status, "bytes": bytes }))
            .map_err(|e| Error::fatal(e.to_string()))
    }
}

reyna_sdk::export_effect!(Webhook);

#[cfg(test)]
mod tests {
    use super::*;
    use reyna_sdk::HttpResponse;
    use reyna_sdk::testing::Harness;

    fn ok() -> Result<HttpResponse, Error> {
        Ok(HttpResponse {
            status: 204,
            headers: vec![],
            body: vec![],
        })
    }

    #[test]
    fn posts_the_event_as_json_to_the_configured_url() {
        let mut h = Harness::new();
        h.config("url", "https://hooks.example.com/in")
            .config("authorization", "Bearer s3cret")
            .http(|_| ok());
        let receipt = h.perform::<Webhook>(br#"{"hello":"world"}"#).unwrap();
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&receipt).unwrap(),
            serde_json::json!({"status": 204, "bytes": 17})
        );
        let sent = &h.http_requests[0];
        assert_eq!(sent.method, "POST");
        assert_eq!(sent.url, "https://hooks.example.com/in");
        assert_eq!(sent.body, br#"{"hello":"world"}"#);
        assert!(
            sent.headers
                .contains(&("content-type".into(), "application/json".into()))
        );
        assert!(
            sent.headers
                .contains(&("authorization".into(), "Bearer s3cret".into()))
        );
    }

    #[test]
    fn event_json_carries_subject_and_parsed_data() {
        let event = reyna_sdk::Event {
            subject: "blob.created.text-input-v1".into(),
            blob: reyna_sdk::Blob {
                id: "01J".into(),
                tenant: "t".into(),
                schema: "text-input-v1".into(),
                data: br#"{"text":"hi"}"#.to_vec(),
                parents: vec![],
            },
        };
        let json: serde_json::Value = serde_json::from_slice(&event.to_json().unwrap()).unwrap();
        assert_eq!(json["subject"], "blob.created.text-input-v1");
        assert_eq!(json["blob"]["data"]["text"], "hi");
    }

    #[test]
    fn server_errors_are_retryable_and_client_errors_fatal() {
        let mut h = Harness::new();
        h.config("url", "https://hooks.example.com/in").http(|_| {
            Ok(HttpResponse {
                status: 503,
                headers: vec![],
                body: b"busy".to_vec(),
            })
        });
        assert_eq!(
            h.perform::<Webhook>(b"{}").unwrap_err(),
            Error::retryable("HTTP 503: busy")
        );
        h.http(|_| {
            Ok(HttpResponse {
                status: 404,
                headers: vec![],
                body: vec![],
            })
        });
        assert!(matches!(
            h.perform::<Webhook>(b"{}").unwrap_err(),
            Error::Fatal(_)
        ));
    }

    #[test]
    fn missing_url_is_a_clear_config_error() {
        let mut h = Harness::new();
        assert_eq!(
            h.perform::<Webhook>(b"{}").unwrap_err(),
            Error::fatal("config `url` is not set")
        );
        assert!(h.http_requests.is_empty());
    }
}
