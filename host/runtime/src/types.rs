//! What goes into a call and comes out of it: the [`Event`] and its
//! [`Blob`], and a processor's [`Output`]s. (The lines of a call's log are
//! `reyna_types::LogLine`, kept with the job.)

/// A stored, schema-validated piece of JSON data.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Blob {
    /// Time-ordered unique id (ULID text).
    pub id: String,
    /// The tenant that owns the blob.
    pub tenant: String,
    /// Schema id, e.g. `text-input-v1`.
    pub schema: String,
    /// The JSON document, UTF-8.
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
    /// Ids of the blobs this one was derived from.
    pub parents: Vec<String>,
}

/// What a plugin is called with: a blob and the subject it was routed on.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Event {
    /// `<entity>.<action>.<schema>`, e.g. `blob.created.text-input-v1`.
    pub subject: String,
    /// The blob the event is about.
    pub blob: Blob,
}

/// A derived blob returned by a processor, checked for shape: its schema is
/// one the manifest declares and its data is UTF-8 JSON. (Validating the data
/// against the schema is the engine's job.)
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Output {
    /// Schema id of the output.
    pub schema: String,
    /// The JSON document, UTF-8.
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
    /// Parents besides the event's blob.
    pub extra_parents: Vec<String>,
}
