//! `llm` (effect): an OpenAI-compatible chat-completions client.
//!
//! Request `{"prompt": "...", "system": "...", "max_tokens": 256}` (JSON);
//! response `{"text": "...", "model": "..."}`. Config: `endpoint` (the full
//! chat-completions URL, e.g. `https://api.openai.com/v1/chat/completions`),
//! `model` (default `gpt-4o-mini`), `api_key` (a secret, sent as a bearer
//! token), `temperature` (default 0, for reproducible answers).
//!
//! The tokens the provider says it charged (the completion's `usage`:
//! `prompt_tokens`, `completion_tokens`, `total_tokens`) are reported to the
//! host as usage units `prompt-tokens`, `completion-tokens` and `tokens`
//! (`total_tokens`, or the sum of the other two when the provider leaves it
//! out), before anything else can fail the call: the host meters them per
//! tenant and holds them against the operator's token budgets.

use reyna_sdk::{Context, Effect, Error, HttpRequest};
use serde::{Deserialize, Serialize};

/// What a processor sends.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// The user message.
    pub prompt: String,
    /// An optional system message.
    #[serde(default)]
    pub system: Option<String>,
    /// Upper bound on generated tokens.
    #[serde(default)]
    pub max_tokens: Option<u32>,
}

#[derive(Debug, Serialize)]
struct Message<'a> {
    role: &'a str,
    content: &'a str,
}

#[derive(Debug, Serialize)]
struct ChatRequest<'a> {
    model: &'a str,
    messages: Vec<Message<'a>>,
    temperature: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
}

#[derive(Debug, Deserialize)]
struct ChatResponse {
    #[serde(default)]
    model: Option<String>,
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<TokenUsage>,
}

/// What the provider charged for a completion, as OpenAI-compatible
/// endpoints report it.
#[derive(Debug, Deserialize)]
struct TokenUsage {
    #[serde(default)]
    prompt_tokens: Option<u64>,
    #[serde(default)]
    completion_tokens: Option<u64>,
    #[serde(default)]
    total_tokens: Option<u64>,
}

impl TokenUsage {
    /// Reports the tokens as usage units: `prompt-tokens`,
    /// `completion-tokens` and `tokens` (the total, or the sum of the two
    /// when the provider gives no total). Counts the provider leaves out are
    /// not reported.
    fn report(&self, ctx: &mut Context<'_>) -> Result<(), Error> {
        if let Some(n) = self.prompt_tokens {
            ctx.report_usage("prompt-tokens", n)?;
        }
        if let Some(n) = self.completion_tokens {
            ctx.report_usage("completion-tokens", n)?;
        }
        let total = self
            .total_tokens
            .or(match (self.prompt_tokens, self.completion_tokens) {
                (None, None) => None,
                (p, c) => Some(p.unwrap_or(0).saturating_add(c.unwrap_or(0))),
            });
        if let Some(n) = total {
            ctx.report_usage("tokens", n)?;
        }
        Ok(())
    }
}

#[derive(Debug, Deserialize)]
struct Choice {
    message: ChoiceMessage,
}

#[derive(Debug, Deserialize)]
struct ChoiceMessage {
    #[serde(default)]
    content: Option<String>,
}

/// The effect.
#[derive(Debug)]
pub struct Llm;

impl Effect for Llm {
    fn perform(request: Vec<u8>, ctx: &mut Context<'_>) -> Result<Vec<u8>, Error> {
        let request: Request = serde_json::from_slice(&request).map_err(|e| {
            Error::invalid_input(format!(
                "llm request must be {{prompt, system?, max_tokens?}}: {e}"
            ))
        })?;
        let endpoint = ctx
            .config("endpoint")
            .ok_or_else(|| Error::fatal("config `endpoint` is not set"))?;
        let model = ctx
            .config("model")
            .unwrap_or_else(|| "gpt-4o-mini".to_owned());
        let temperature: f64 = ctx.config_parse("temperature")?.unwrap_or(0.0);
        let mut messages = Vec::with_capacity(2);
        if let Some(system) = request.system.as_deref() {
            messages.push(Message {
                role: "system",
                content: system,
            });
        }
        messages.push(Message {
            role: "user",
            content: &request.prompt,
        });
        let body = serde_json::to_vec(&ChatRequest {
            model: &model,
            messages,
            temperature,
            max_tokens: request.max_tokens,
        })
        .map_err(|e| Error::fatal(e.to_string()))?;
        let mut http = HttpRequest::post_json(&endpoint, body);
        if let Some(key) = ctx.config("api_key") {
            http = http.header("authorization", &format!("Bearer {key}"));
        }
        let response = ctx.http(&http)?.error_for_status()?;
        let chat: ChatResponse = serde_json::from_slice(&response.body)
            .map_err(|e| Error::fatal(format!("endpoint did not return a chat completion: {e}")))?;
        // First: the tokens were charged, whatever comes of the answer.
        if let Some(usage) = &chat.usage {
            usage.report(ctx)?;
        }
        let text = chat
            .choices
            .into_iter()
            .next()
            .and_then(|c| c.message.content)
            .ok_or_else(|| Error::retryable("chat completion has no message content"))?;
        serde_json::to_vec(
            &serde_json::json!({ "text": text, "model": chat.model.unwrap_or(model) }),
        )
        .map_err(|e| Error::fatal(e.to_string()))
    }
}

reyna_sdk::export_effect!(Llm);

#[cfg(test)]
mod tests {
    use super::*;
    use reyna_sdk::HttpResponse;
    use reyna_sdk::testing::Harness;

    fn completion(text: &str) -> Result<HttpResponse, Error> {
        completion_with_usage(
            Some(text),
            serde_json::json!({ "prompt_tokens": 21, "completion_tokens": 9, "total_tokens": 30 }),
        )
    }

    fn completion_with_usage(
        text: Option<&str>,
        usage: serde_json::Value,
    ) -> Result<HttpResponse, Error> {
        let body = serde_json::json!({
            "id": "chatcmpl-1", "object": "chat.completion", "model": "local-model",
            "choices": [{ "index": 0, "message": { "role": "assistant", "content": text }, "finish_reason": "stop" }],
            "usage": usage,
        });
        Ok(HttpResponse {
            status: 200,
            headers: vec![],
            body: body.to_string().into_bytes(),
        })
    }

    fn units(pairs: &[(&str, u64)]) -> std::collections::BTreeMap<String, u64> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
    }

    fn harness_answering(
        f: impl FnMut(&reyna_sdk::HttpRequest) -> Result<HttpResponse, Error> + 'static,
    ) -> Harness {
        let mut h = Harness::new();
        h.config("endpoint", "http://127.0.0.1:9/v1/chat/completions")
            .http(f);
        h
    }

    #[test]
    fn reports_the_providers_token_usage() {
        let mut h = harness_answering(|_| completion("Expanded."));
        h.perform::<Llm>(br#"{"prompt": "Expand this."}"#).unwrap();
        assert_eq!(
            h.usage,
            units(&[
                ("completion-tokens", 9),
                ("prompt-tokens", 21),
                ("tokens", 30)
            ])
        );
        // A second call adds to the first.
        h.perform::<Llm>(br#"{"prompt": "Again."}"#).unwrap();
        assert_eq!(h.usage["tokens"], 60);
    }

    #[test]
    fn tokens_are_the_sum_when_the_provider_gives_no_total() {
        let mut h = harness_answering(|_| {
            completion_with_usage(
                Some("ok"),
                serde_json::json!({ "prompt_tokens": 5, "completion_tokens": 7 }),
            )
        });
        h.perform::<Llm>(br#"{"prompt": "p"}"#).unwrap();
        assert_eq!(
            h.usage,
            units(&[
                ("completion-tokens", 7),
                ("prompt-tokens", 5),
                ("tokens", 12)
            ])
        );
    }

    #[test]
    fn a_completion_without_usage_reports_none() {
        let mut h =
            harness_answering(|_| completion_with_usage(Some("ok"), serde_json::json!(null)));
        h.perform::<Llm>(br#"{"prompt": "p"}"#).unwrap();
        assert!(h.usage.is_empty(), "{:?}", h.usage);
    }

    #[test]
    fn tokens_charged_for_an_empty_answer_still_count() {
        let mut h = harness_answering(|_| {
            completion_with_usage(
                None,
                serde_json::json!({ "prompt_tokens": 3, "completion_tokens": 0, "total_tokens": 3 }),
            )
        });
        let err = h.perform::<Llm>(br#"{"prompt": "p"}"#).unwrap_err();
        assert!(matches!(err, Error::Retryable(_)), "{err}");
        assert_eq!(
            h.usage,
            units(&[
                ("completion-tokens", 0),
                ("prompt-tokens", 3),
                ("tokens", 3)
            ])
        );
    }

    #[test]
    fn sends_an_openai_chat_completions_request() {
        let mut h = Harness::new();
        h.config("endpoint", "http://127.0.0.1:9/v1/chat/completions")
            .config("api_key", "sk-test")
            .config("model", "m1")
            .http(|_| completion("Expanded."));
        let out = h
            .perform::<Llm>(
                br#"{"prompt": "Expand this.", "system": "Be brief.", "max_tokens": 50}"#,
            )
            .unwrap();
        let out: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            out,
            serde_json::json!({ "text": "Expanded.", "model": "local-model" })
        );
        let sent = &h.http_requests[0];
        assert_eq!(sent.url, "http://127.0.0.1:9/v1/chat/completions");
        assert!(
            sent.headers
                .contains(&("authorization".into(), "Bearer sk-test".into()))
        );
        let body: serde_json::Value = serde_json::from_slice(&sent.body).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "model": "m1", "temperature": 0.0, "max_tokens": 50,
                "messages": [{ "role": "system", "content": "Be brief." }, { "role": "user", "content": "Expand this." }]
            })
        );
    }

    #[test]
    fn bad_requests_are_invalid_input() {
        let mut h = Harness::new();
        h.config("endpoint", "http://x/v1/chat/completions");
        let err = h.perform::<Llm>(b"{\"promt\": \"typo\"}").unwrap_err();
        assert!(
            matches!(err, Error::InvalidInput(ref m) if m.contains("promt")),
            "{err}"
        );
        assert!(h.http_requests.is_empty());
    }

    #[test]
    fn rate_limits_are_retryable_and_garbage_is_fatal() {
        let mut h = Harness::new();
        h.config("endpoint", "http://x/v1/chat/completions")
            .http(|_| {
                Ok(HttpResponse {
                    status: 429,
                    headers: vec![],
                    body: b"slow down".to_vec(),
                })
            });
        assert!(matches!(
            h.perform::<Llm>(br#"{"prompt":"p"}"#).unwrap_err(),
            Error::Retryable(_)
        ));
        h.http(|_| {
            Ok(HttpResponse {
                status: 200,
                headers: vec![],
                body: b"<html>".to_vec(),
            })
        });
        assert!(matches!(
            h.perform::<Llm>(br#"{"prompt":"p"}"#).unwrap_err(),
            Error::Fatal(_)
        ));
    }
}
