//! What a plugin can ask of the host during a call.

use crate::{Blob, Error, Event, HttpRequest, HttpResponse, LogLevel};

/// The host functions behind a [`Context`]: the wasm imports in a component,
/// an in-memory fake in [`crate::testing`].
pub(crate) trait HostCalls {
    fn log(&mut self, level: LogLevel, message: &str);
    fn config(&mut self, key: &str) -> Option<String>;
    fn get_blob(&mut self, id: &str) -> Result<Option<Blob>, Error>;
    fn query_blobs(&mut self, schema: &str, filter: &str) -> Result<Vec<Blob>, Error>;
    fn call_effect(&mut self, name: &str, request: &[u8]) -> Result<Vec<u8>, Error>;
    fn http(&mut self, request: &HttpRequest) -> Result<HttpResponse, Error>;
    fn report_usage(&mut self, unit: &str, amount: u64) -> Result<(), Error>;
}

/// Access to the host during one call: the event, logs, configuration, blob
/// reads scoped to the event's tenant, effect calls (processors), and HTTP
/// and usage reports (effects).
pub struct Context<'a> {
    event: &'a Event,
    host: &'a mut dyn HostCalls,
}

impl std::fmt::Debug for Context<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("subject", &self.event.subject)
            .finish_non_exhaustive()
    }
}

impl<'a> Context<'a> {
    pub(crate) fn new(event: &'a Event, host: &'a mut dyn HostCalls) -> Self {
        Self { event, host }
    }

    /// The subject the event was routed on, e.g. `blob.created.text-input-v1`.
    pub fn subject(&self) -> &str {
        &self.event.subject
    }

    /// The event's blob (for effects called through `perform`, an empty blob).
    pub fn blob(&self) -> &Blob {
        &self.event.blob
    }

    /// Writes a log line into the call's log. The host keeps at most 64 KiB
    /// (a line costs its length plus one) and 1,000 lines per call by
    /// default, stdout and stderr included, and drops the rest.
    pub fn log(&mut self, level: LogLevel, message: &str) {
        self.host.log(level, message);
    }

    /// Writes an info log line.
    pub fn info(&mut self, message: &str) {
        self.host.log(LogLevel::Info, message);
    }

    /// Writes a warning log line.
    pub fn warn(&mut self, message: &str) {
        self.host.log(LogLevel::Warn, message);
    }

    /// Reads a configuration value of the running tenant's installation of
    /// this plugin: a plain value or a secret (set by the tenant's admin
    /// with `PUT /v1/tenants/{tenant}/installations/{plugin}/config` or
    /// `.../secrets/{key}`). Reading a secret is recorded in the output's
    /// lineage by name and version; never log or output its value (the
    /// host redacts it from logs, but not from outputs).
    pub fn config(&mut self, key: &str) -> Option<String> {
        self.host.config(key)
    }

    /// Reads and parses a configuration value; a value that does not parse is
    /// [`Error::Fatal`] naming the key (a configuration problem, not the input's).
    pub fn config_parse<T>(&mut self, key: &str) -> Result<Option<T>, Error>
    where
        T: std::str::FromStr,
        T::Err: std::fmt::Display,
    {
        match self.host.config(key) {
            None => Ok(None),
            Some(text) => text
                .trim()
                .parse()
                .map(Some)
                .map_err(|e| Error::Fatal(format!("config `{key}` = `{text}` is invalid: {e}"))),
        }
    }

    /// Reads a blob of the event's tenant by id.
    pub fn get_blob(&mut self, id: &str) -> Result<Option<Blob>, Error> {
        self.host.get_blob(id)
    }

    /// Lists the tenant's blobs of `schema` whose top-level fields equal those
    /// of `filter` (a JSON object; `{}` matches all; a key starting with `/`
    /// is a JSON pointer, e.g. `{"/metadata/book_id": "b1"}`), oldest first. A query
    /// matching more than the host's bounds (1,000 blobs or 16 MiB of data by
    /// default) is [`Error::Fatal`] saying which, with no blobs: narrow the
    /// filter.
    pub fn query_blobs(
        &mut self,
        schema: &str,
        filter: &serde_json::Value,
    ) -> Result<Vec<Blob>, Error> {
        if !filter.is_object() {
            return Err(Error::Fatal(
                "query filter must be a JSON object".to_owned(),
            ));
        }
        self.host.query_blobs(schema, &filter.to_string())
    }

    /// Calls an effect the manifest declares in `effects` (processors only).
    /// One call of the processor makes at most `max-effect-calls` of these
    /// (manifest `[limits]`, capped by the operator; 64 by default); the
    /// one past it fails the whole call with `too-many-effect-calls`.
    pub fn call_effect(&mut self, name: &str, request: &[u8]) -> Result<Vec<u8>, Error> {
        self.host.call_effect(name, request)
    }

    /// Calls an effect with a JSON request and decodes its JSON response.
    pub fn call_effect_json<Req, Resp>(&mut self, name: &str, request: &Req) -> Result<Resp, Error>
    where
        Req: serde::Serialize + ?Sized,
        Resp: serde::de::DeserializeOwned,
    {
        let body = serde_json::to_vec(request)
            .map_err(|e| Error::Fatal(format!("cannot encode request for effect `{name}`: {e}")))?;
        let response = self.host.call_effect(name, &body)?;
        serde_json::from_slice(&response).map_err(|e| {
            Error::Fatal(format!(
                "effect `{name}` returned an unexpected response: {e}"
            ))
        })
    }

    /// Sends an HTTP request (effects only; the host allows only the hosts the
    /// manifest declares in `allowed-hosts` and an operator approved).
    pub fn http(&mut self, request: &HttpRequest) -> Result<HttpResponse, Error> {
        request.url_parts()?;
        self.host.http(request)
    }

    /// Reports usage in the effect's own units (effects only): what the
    /// outside world charged for this call, e.g. an LLM's tokens.
    ///
    /// The host adds `amount` to the tenant's usage of `unit` (metered per
    /// hour) and checks it against the budgets the operator set for that
    /// unit (say `tokens` per day and per month): a processor whose effect
    /// call finds a budget used up fails with `budget-exceeded`. Report as
    /// soon as the amount is known: what was reported before the call fails
    /// still counts.
    ///
    /// A unit name is 1 to 64 bytes of `a-z`, `0-9`, `-`, `_` and `.`,
    /// starting with a letter; one call reports at most 16 distinct units;
    /// amounts of one unit add up (saturating). A report that breaks a rule
    /// is [`Error::InvalidInput`] saying which, and counts nothing. In a
    /// processor it is [`Error::Fatal`]: processors have no usage of their
    /// own to report.
    ///
    /// ```
    /// # use reyna_sdk::{Context, Error};
    /// fn after_the_answer(ctx: &mut Context<'_>, prompt: u64, completion: u64) -> Result<(), Error> {
    ///     ctx.report_usage("prompt-tokens", prompt)?;
    ///     ctx.report_usage("completion-tokens", completion)?;
    ///     ctx.report_usage("tokens", prompt.saturating_add(completion))
    /// }
    /// ```
    pub fn report_usage(&mut self, unit: &str, amount: u64) -> Result<(), Error> {
        self.host.report_usage(unit, amount)
    }
}
