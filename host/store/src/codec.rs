//! The compact binary form of the records written on every event (blob
//! metadata, events, jobs, idempotency records). JSON cost the single
//! writer little CPU but made these records two to three times larger, and
//! every byte is written and fsynced. Rarely written records (schemas, plugins, dead letters, ...) stay
//! JSON.
//!
//! A binary record starts with [`BINARY_TAG`]; a JSON record starts with `{`,
//! so records written by format 1 still decode. Fields are written in
//! declaration order: integers as LEB128 varints, ids as 16 big-endian
//! bytes, strings with a varint length, sha256 hex digests as their 32 bytes.
//! Adding a field means a new tag (or a format version), never a silent
//! reinterpretation.

use crate::model::{
    BlobId, BlobMeta, Cost, Digest, EffectCall, Event, GuestLog, Job, JobId, JobState, LogLevel,
    LogLine, Producer, SecretUse,
};

/// First byte of a binary record (a JSON record starts with `{`).
pub(crate) const BINARY_TAG: u8 = 1;

/// A record with a binary form.
pub(crate) trait Binary: Sized {
    fn put(&self, out: &mut Vec<u8>);
    fn take(r: &mut Reader<'_>) -> Option<Self>;
}

/// Encodes `value` with its tag.
pub(crate) fn to_vec<T: Binary>(value: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(160);
    out.push(BINARY_TAG);
    value.put(&mut out);
    out
}

/// Decodes a tagged binary record; `None` if it is malformed or has bytes
/// left over.
pub(crate) fn from_slice<T: Binary>(bytes: &[u8]) -> Option<T> {
    let (&tag, rest) = bytes.split_first()?;
    if tag != BINARY_TAG {
        return None;
    }
    let mut r = Reader(rest);
    let value = T::take(&mut r)?;
    r.0.is_empty().then_some(value)
}

fn put_u64(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_u32(out: &mut Vec<u8>, v: u32) {
    put_u64(out, u64::from(v));
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_u64(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

fn put_id(out: &mut Vec<u8>, id: u128) {
    out.extend_from_slice(&id.to_be_bytes());
}

fn put_opt_id(out: &mut Vec<u8>, id: Option<u128>) {
    match id {
        Some(id) => {
            out.push(1);
            put_id(out, id);
        }
        None => out.push(0),
    }
}

/// A digest: a 0 byte and its 32 bytes. (Records written before digests
/// had a type may hold a 1 byte and the digest's text instead.)
fn put_digest(out: &mut Vec<u8>, digest: &Digest) {
    out.push(0);
    out.extend_from_slice(digest.as_bytes());
}

/// An optional digest as text (empty for none), as effect calls have
/// always stored it.
fn put_digest_text(out: &mut Vec<u8>, digest: Option<&Digest>) {
    match digest {
        Some(d) => put_str(out, &d.to_string()),
        None => put_str(out, ""),
    }
}

/// Reads what the `put_*` functions wrote.
pub(crate) struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn bytes(&mut self, n: usize) -> Option<&[u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        Some(self.bytes(1)?[0])
    }

    /// An optional trailing flag: false when the record ends here (written
    /// before the field existed), true for a 1 byte.
    fn trailing_flag(&mut self) -> Option<bool> {
        if self.0.is_empty() {
            return Some(false);
        }
        match self.u8()? {
            0 => Some(false),
            1 => Some(true),
            _ => None,
        }
    }

    /// An id at the end of a record, absent in records written before it.
    fn trailing_id(&mut self) -> Option<Option<u128>> {
        if self.0.is_empty() {
            return Some(None);
        }
        Some(Some(self.id()?))
    }

    /// A number at the end of a record, 0 in records written before it.
    fn trailing_u64(&mut self) -> Option<u64> {
        if self.0.is_empty() {
            return Some(0);
        }
        self.u64()
    }

    fn u64(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            v |= u64::from(b & 0x7f).checked_shl(shift)?;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }

    fn u32(&mut self) -> Option<u32> {
        u32::try_from(self.u64()?).ok()
    }

    fn len(&mut self) -> Option<usize> {
        let n = usize::try_from(self.u64()?).ok()?;
        // A length can never exceed what is left: refuse before allocating.
        (n <= self.0.len()).then_some(n)
    }

    fn string(&mut self) -> Option<String> {
        let n = self.len()?;
        String::from_utf8(self.bytes(n)?.to_vec()).ok()
    }

    fn id(&mut self) -> Option<u128> {
        Some(u128::from_be_bytes(self.bytes(16)?.try_into().ok()?))
    }

    fn opt_id(&mut self) -> Option<Option<u128>> {
        match self.u8()? {
            0 => Some(None),
            1 => Some(Some(self.id()?)),
            _ => None,
        }
    }

    fn digest(&mut self) -> Option<Digest> {
        match self.u8()? {
            0 => Some(Digest::from_bytes(self.bytes(32)?.try_into().ok()?)),
            1 => Digest::parse_lenient(&self.string()?).ok(),
            _ => None,
        }
    }

    fn digest_text(&mut self) -> Option<Option<Digest>> {
        let text = self.string()?;
        if text.is_empty() {
            return Some(None);
        }
        Digest::parse_lenient(&text).ok().map(Some)
    }

    fn opt_u64(&mut self) -> Option<Option<u64>> {
        match self.u8()? {
            0 => Some(None),
            1 => Some(Some(self.u64()?)),
            _ => None,
        }
    }

    fn opt_string(&mut self) -> Option<Option<String>> {
        match self.u8()? {
            0 => Some(None),
            1 => Some(Some(self.string()?)),
            _ => None,
        }
    }

    fn list<T>(&mut self, mut item: impl FnMut(&mut Self) -> Option<T>) -> Option<Vec<T>> {
        // Each item takes at least one byte, which bounds the allocation.
        let n = self.len()?;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(item(self)?);
        }
        Some(out)
    }
}

impl Binary for BlobMeta {
    fn put(&self, out: &mut Vec<u8>) {
        put_id(out, self.id.key());
        put_str(out, &self.tenant);
        put_str(out, &self.schema);
        put_digest(out, &self.digest);
        put_u64(out, self.size);
        put_u64(out, self.created_at);
        put_u64(out, self.parents.len() as u64);
        for p in &self.parents {
            put_id(out, p.key());
        }
        put_u32(out, self.hop);
        match &self.producer {
            Some(p) => {
                out.push(1);
                p.put(out);
            }
            None => out.push(0),
        }
    }

    fn take(r: &mut Reader<'_>) -> Option<Self> {
        Some(Self {
            id: BlobId::from_key(r.id()?),
            tenant: r.string()?,
            schema: r.string()?,
            digest: r.digest()?,
            size: r.u64()?,
            created_at: r.u64()?,
            parents: r.list(|r| Some(BlobId::from_key(r.id()?)))?,
            hop: r.u32()?,
            producer: match r.u8()? {
                0 => None,
                1 => Some(Producer::take(r)?),
                _ => return None,
            },
        })
    }
}

impl Binary for Producer {
    fn put(&self, out: &mut Vec<u8>) {
        put_str(out, &self.plugin);
        put_str(out, &self.version);
        put_digest(out, &self.component_digest);
        put_digest(out, &self.config_digest);
        put_id(out, self.job_id.key());
        put_u32(out, self.attempt);
        self.cost.put(out);
        put_u64(out, self.effect_calls.len() as u64);
        for call in &self.effect_calls {
            call.put(out);
        }
        put_opt_id(out, self.reused_from.map(JobId::key));
        // Last, so records written before it decode with no secrets.
        put_u64(out, self.secrets.len() as u64);
        for used in &self.secrets {
            put_str(out, &used.plugin);
            put_str(out, &used.name);
            put_u32(out, used.version);
        }
        // The cost's CPU time, after the secrets: records written before it
        // was measured end here and decode with 0.
        put_u64(out, self.cost.cpu_us);
    }

    fn take(r: &mut Reader<'_>) -> Option<Self> {
        let mut producer = Self {
            plugin: r.string()?,
            version: r.string()?,
            component_digest: r.digest()?,
            config_digest: r.digest()?,
            job_id: JobId::from_key(r.id()?),
            attempt: r.u32()?,
            cost: Cost::take(r)?,
            effect_calls: r.list(EffectCall::take)?,
            reused_from: r.opt_id()?.map(JobId::from_key),
            secrets: if r.0.is_empty() {
                Vec::new()
            } else {
                r.list(|r| {
                    Some(SecretUse {
                        plugin: r.string()?,
                        name: r.string()?,
                        version: r.u32()?,
                    })
                })?
            },
        };
        producer.cost.cpu_us = r.trailing_u64()?;
        Some(producer)
    }
}

/// A cost without its `cpu_us`, which the record holding the cost writes at
/// its end (a trailing field, absent from records written before it).
impl Binary for Cost {
    fn put(&self, out: &mut Vec<u8>) {
        put_u64(out, self.wall_us);
        put_u64(out, self.epoch_ticks);
        match self.fuel {
            Some(f) => {
                out.push(1);
                put_u64(out, f);
            }
            None => out.push(0),
        }
        put_u64(out, self.peak_memory);
        put_u64(out, self.bytes_in);
        put_u64(out, self.bytes_out);
        put_u32(out, self.outputs);
    }

    fn take(r: &mut Reader<'_>) -> Option<Self> {
        Some(Self {
            wall_us: r.u64()?,
            epoch_ticks: r.u64()?,
            fuel: r.opt_u64()?,
            peak_memory: r.u64()?,
            bytes_in: r.u64()?,
            bytes_out: r.u64()?,
            outputs: r.u32()?,
            cpu_us: 0,
        })
    }
}

impl Binary for EffectCall {
    fn put(&self, out: &mut Vec<u8>) {
        put_str(out, &self.effect);
        put_str(out, &self.version);
        put_digest_text(out, Some(&self.request_digest));
        put_digest_text(out, self.response_digest.as_ref());
        put_u64(out, self.duration_us);
        put_str(out, &self.outcome.to_string());
    }

    fn take(r: &mut Reader<'_>) -> Option<Self> {
        Some(Self {
            effect: r.string()?,
            version: r.string()?,
            request_digest: r.digest_text()??,
            response_digest: r.digest_text()?,
            duration_us: r.u64()?,
            outcome: r.string()?.parse().ok()?,
        })
    }
}

impl Binary for GuestLog {
    fn put(&self, out: &mut Vec<u8>) {
        out.push(u8::from(self.truncated));
        put_u64(out, self.lines.len() as u64);
        for line in &self.lines {
            out.push(line.level.code());
            put_str(out, &line.message);
        }
    }

    fn take(r: &mut Reader<'_>) -> Option<Self> {
        let truncated = match r.u8()? {
            0 => false,
            1 => true,
            _ => return None,
        };
        let lines = r.list(|r| {
            Some(LogLine {
                level: LogLevel::from_code(r.u8()?)?,
                message: r.string()?,
            })
        })?;
        Some(Self { lines, truncated })
    }
}

impl Binary for Event {
    fn put(&self, out: &mut Vec<u8>) {
        put_u64(out, self.seq);
        put_str(out, &self.tenant);
        put_str(out, &self.subject);
        put_opt_id(out, self.blob_id.map(BlobId::key));
        put_opt_id(out, self.job_id.map(JobId::key));
        put_u64(out, self.at);
    }

    fn take(r: &mut Reader<'_>) -> Option<Self> {
        Some(Self {
            seq: r.u64()?,
            tenant: r.string()?,
            subject: r.string()?,
            blob_id: r.opt_id()?.map(BlobId::from_key),
            job_id: r.opt_id()?.map(JobId::from_key),
            at: r.u64()?,
        })
    }
}

impl Binary for Job {
    fn put(&self, out: &mut Vec<u8>) {
        put_id(out, self.id.key());
        put_str(out, &self.tenant);
        put_str(out, &self.plugin);
        put_str(out, &self.version);
        put_id(out, self.blob_id.key());
        put_str(out, &self.subject);
        put_u32(out, self.hop);
        put_u32(out, self.attempt);
        out.push(self.state.code());
        put_u64(out, self.due_at);
        put_u64(out, self.created_at);
        put_u64(out, self.updated_at);
        match &self.last_error {
            Some(e) => {
                out.push(1);
                put_str(out, e);
            }
            None => out.push(0),
        }
        put_u64(out, self.outputs.len() as u64);
        for o in &self.outputs {
            put_id(out, o.key());
        }
        // Trailing fields: records written before them end here (format 2
        // and 3 jobs end after the outputs or the replay flag).
        out.push(u8::from(self.replay_effects));
        put_id(out, self.tree.key());
    }

    fn take(r: &mut Reader<'_>) -> Option<Self> {
        let id = JobId::from_key(r.id()?);
        let tenant = r.string()?;
        let plugin = r.string()?;
        let version = r.string()?;
        let blob_id = BlobId::from_key(r.id()?);
        Some(Self {
            id,
            tenant,
            plugin,
            version,
            blob_id,
            subject: r.string()?,
            hop: r.u32()?,
            attempt: r.u32()?,
            state: JobState::from_code(r.u8()?)?,
            due_at: r.u64()?,
            created_at: r.u64()?,
            updated_at: r.u64()?,
            last_error: r.opt_string()?,
            outputs: r.list(|r| Some(BlobId::from_key(r.id()?)))?,
            replay_effects: r.trailing_flag()?,
            // A job stored before trees were counted is a tree of its own.
            tree: r.trailing_id()?.map_or(blob_id, BlobId::from_key),
        })
    }
}

impl Binary for crate::tables::IdemRecord {
    fn put(&self, out: &mut Vec<u8>) {
        put_id(out, self.job_id.key());
        put_u64(out, self.outputs.len() as u64);
        for id in &self.outputs {
            put_id(out, id.key());
        }
    }

    fn take(r: &mut Reader<'_>) -> Option<Self> {
        Some(Self {
            job_id: JobId::from_key(r.id()?),
            outputs: r.list(|r| Some(BlobId::from_key(r.id()?)))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(producer: Option<Producer>) -> BlobMeta {
        BlobMeta {
            id: BlobId::generate(),
            tenant: "acme".into(),
            schema: "text-input-v1".into(),
            digest: Digest::of(b"x"),
            size: 1 << 40,
            created_at: 1_700_000_000_000,
            parents: vec![BlobId::generate(), BlobId::generate()],
            hop: 3,
            producer,
        }
    }

    fn producer() -> Producer {
        Producer {
            plugin: "word-stats".into(),
            version: "0.1.0".into(),
            component_digest: Digest::of(b"c"),
            config_digest: Digest::of(b"{}"),
            job_id: JobId::generate(),
            attempt: 2,
            cost: Cost {
                wall_us: 17,
                epoch_ticks: 1,
                fuel: Some(u64::MAX),
                peak_memory: 65536,
                bytes_in: 1024,
                bytes_out: 12,
                outputs: 1,
                cpu_us: 300,
            },
            effect_calls: vec![EffectCall {
                effect: "http".into(),
                version: "1.0.0".into(),
                request_digest: Digest::of(b"request"),
                response_digest: None,
                duration_us: 5,
                outcome: crate::model::EffectOutcome::Failed("timeout: 2s".into()),
            }],
            reused_from: Some(JobId::generate()),
            secrets: vec![SecretUse {
                plugin: "llm".into(),
                name: "api_key".into(),
                version: 3,
            }],
        }
    }

    #[test]
    fn records_round_trip() {
        for m in [meta(None), meta(Some(producer()))] {
            assert_eq!(from_slice::<BlobMeta>(&to_vec(&m)), Some(m));
        }
        let event = Event {
            seq: 300,
            tenant: "acme".into(),
            subject: "blob.created.text-input-v1".into(),
            blob_id: Some(BlobId::generate()),
            job_id: None,
            at: 5,
        };
        assert_eq!(from_slice::<Event>(&to_vec(&event)), Some(event));
        let job = Job {
            id: JobId::generate(),
            tenant: "acme".into(),
            plugin: "p".into(),
            version: "1".into(),
            blob_id: BlobId::generate(),
            subject: "s".into(),
            hop: 0,
            attempt: 1,
            state: JobState::Dead,
            due_at: 1,
            created_at: 2,
            updated_at: 3,
            last_error: Some("boom".into()),
            outputs: vec![BlobId::generate()],
            replay_effects: false,
            tree: BlobId::generate(),
        };
        let bytes = to_vec(&job);
        assert_eq!(from_slice::<Job>(&bytes), Some(job.clone()));
        let replaying = Job {
            replay_effects: true,
            ..job.clone()
        };
        assert_eq!(from_slice::<Job>(&to_vec(&replaying)), Some(replaying));
        // Records written before the trailing fields: without the tree (it
        // reads as the job's input), and without the replay flag too.
        let before_tree = &bytes[..bytes.len() - 16];
        let old = Job {
            tree: job.blob_id,
            ..job.clone()
        };
        assert_eq!(from_slice::<Job>(before_tree), Some(old.clone()));
        assert_eq!(from_slice::<Job>(&bytes[..bytes.len() - 17]), Some(old));
        // A replay flag other than 0 or 1 is malformed.
        let mut bad = before_tree.to_vec();
        *bad.last_mut().unwrap() = 7;
        assert_eq!(from_slice::<Job>(&bad), None);
        let idem = crate::tables::IdemRecord {
            job_id: JobId::generate(),
            outputs: vec![BlobId::generate(), BlobId::generate()],
        };
        let bytes = to_vec(&idem);
        assert_eq!(bytes.len(), 1 + 16 + 1 + 2 * 16);
        assert_eq!(from_slice(&bytes), Some(idem));
    }

    /// What format 3 wrote for digests that were strings: a config digest
    /// that was not hex went as text, and effect-call digests as text with
    /// the `sha256:` prefix (empty for none). They still decode.
    #[test]
    fn digests_stored_as_text_still_decode() {
        let config = Digest::of(b"{}");
        let mut out = Vec::new();
        out.push(1);
        put_str(&mut out, &config.hex());
        assert_eq!(Reader(&out).digest(), Some(config));
        let mut out = Vec::new();
        put_str(&mut out, &config.to_string());
        put_str(&mut out, "");
        let mut r = Reader(&out);
        assert_eq!(r.digest_text(), Some(Some(config)));
        assert_eq!(r.digest_text(), Some(None));
    }

    #[test]
    fn binary_is_smaller_than_json() {
        let m = meta(None);
        let json = serde_json::to_vec(&m).unwrap();
        assert!(
            to_vec(&m).len() * 2 < json.len(),
            "{} vs {}",
            to_vec(&m).len(),
            json.len()
        );
    }

    /// What `m` decodes as from a record written before costs had a CPU
    /// time: the same, with `cpu_us` 0.
    fn without_cpu_time(m: &BlobMeta) -> BlobMeta {
        let mut old = m.clone();
        if let Some(p) = old.producer.as_mut() {
            p.cost.cpu_us = 0;
        }
        old
    }

    #[test]
    fn a_cost_written_before_cpu_time_decodes_with_zero() {
        let m = meta(Some(producer()));
        let bytes = to_vec(&m);
        // What the writer wrote before `cpu_us`: everything up to the
        // secrets, the trailing varint (300: 2 bytes) missing.
        let old = &bytes[..bytes.len() - 2];
        let decoded = from_slice::<BlobMeta>(old).unwrap();
        assert_eq!(decoded.producer.as_ref().unwrap().cost.cpu_us, 0);
        assert_eq!(decoded, without_cpu_time(&m));
        assert_eq!(
            decoded.producer.unwrap().secrets,
            m.producer.as_ref().unwrap().secrets
        );
        // Written now, it comes back whole.
        assert_eq!(
            from_slice::<BlobMeta>(&bytes)
                .unwrap()
                .producer
                .unwrap()
                .cost
                .cpu_us,
            300
        );
    }

    #[test]
    fn truncated_or_padded_records_are_refused() {
        let m = meta(Some(producer()));
        let bytes = to_vec(&m);
        // A record written before costs had a CPU time ends before it (2
        // bytes for 300): it decodes, with 0.
        let before_cpu = bytes.len() - 2;
        assert_eq!(
            from_slice::<BlobMeta>(&bytes[..before_cpu]),
            Some(without_cpu_time(&m))
        );
        // A record written before producers listed the secrets they read
        // ends where that list begins: it decodes, with none.
        let mut before = without_cpu_time(&m);
        if let Some(p) = before.producer.as_mut() {
            p.secrets.clear();
        }
        // Now written with an empty list (1 byte) and a CPU time of 0 (1 byte).
        let old_len = to_vec(&before).len() - 2;
        assert_eq!(from_slice::<BlobMeta>(&bytes[..old_len]), Some(before));
        for n in (0..bytes.len()).filter(|n| *n != old_len && *n != before_cpu) {
            assert!(
                from_slice::<BlobMeta>(&bytes[..n]).is_none(),
                "prefix of {n} bytes"
            );
        }
        let mut padded = bytes.clone();
        padded.push(0);
        assert!(from_slice::<BlobMeta>(&padded).is_none());
    }
}
