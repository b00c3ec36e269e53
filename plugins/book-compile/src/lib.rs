//! `book-compile`: book-compile-request-v1 -> compiled-book-v1 (fan-in).
//!
//! Reads the book's chapter-v1 blobs through the host's blob query, orders
//! them by `index`, and records every chapter as a parent of the book. When
//! the request says how many chapters to expect and fewer exist yet, the call
//! is `retryable`, so the host tries again later.

use std::collections::BTreeMap;

use reyna_sdk::{Context, Error, Output, Processor};
use serde::{Deserialize, Serialize};

/// The book-compile-request-v1 document.
#[derive(Debug, Deserialize)]
pub struct Request {
    /// Which book.
    pub book_id: String,
    /// The book's title.
    pub title: String,
    /// Wait until this many chapters exist.
    #[serde(default)]
    pub expected_chapters: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct Chapter {
    index: u64,
    title: String,
    text: String,
}

#[derive(Debug, Serialize)]
struct ChapterEntry {
    index: u64,
    title: String,
    words: u64,
    blob_id: String,
}

#[derive(Debug, Serialize)]
struct Book {
    book_id: String,
    title: String,
    chapters: Vec<ChapterEntry>,
    words: u64,
    text: String,
}

/// The processor.
#[derive(Debug)]
pub struct BookCompile;

impl Processor for BookCompile {
    type Input = Request;

    fn process(request: Request, ctx: &mut Context<'_>) -> Result<Vec<Output>, Error> {
        let blobs = ctx.query_blobs(
            "chapter-v1",
            &serde_json::json!({ "book_id": request.book_id }),
        )?;
        // The newest blob for an index wins (a corrected chapter replaces the old one).
        let mut by_index: BTreeMap<u64, (String, Chapter)> = BTreeMap::new();
        for blob in blobs {
            let chapter: Chapter = blob.json()?;
            by_index.insert(chapter.index, (blob.id, chapter));
        }
        let found = by_index.len() as u64;
        if found == 0 {
            return Err(Error::retryable(format!(
                "no chapters of book `{}` yet",
                request.book_id
            )));
        }
        if let Some(expected) = request.expected_chapters
            && found < expected
        {
            return Err(Error::retryable(format!(
                "book `{}` has {found} of {expected} chapters",
                request.book_id
            )));
        }
        let mut text = format!("# {}\n", request.title);
        let mut chapters = Vec::with_capacity(by_index.len());
        let mut words = 0;
        for (index, (blob_id, chapter)) in by_index {
            let chapter_words = chapter.text.split_whitespace().count() as u64;
            words += chapter_words;
            text.push_str(&format!(
                "\n## {}\n\n{}\n",
                chapter.title,
                chapter.text.trim()
            ));
            chapters.push(ChapterEntry {
                index,
                title: chapter.title,
                words: chapter_words,
                blob_id,
            });
        }
        ctx.info(&format!(
            "compiled `{}` from {found} chapters",
            request.book_id
        ));
        let parents: Vec<String> = chapters.iter().map(|c| c.blob_id.clone()).collect();
        let book = Book {
            book_id: request.book_id,
            title: request.title,
            chapters,
            words,
            text,
        };
        Ok(vec![
            Output::json("compiled-book-v1", &book)?.with_parents(parents),
        ])
    }
}

reyna_sdk::export_processor!(BookCompile);

#[cfg(test)]
mod tests {
    use super::*;
    use reyna_sdk::testing::Harness;
    use serde_json::json;

    fn chapter(book: &str, index: u64, text: &str) -> serde_json::Value {
        json!({ "book_id": book, "index": index, "title": format!("Chapter {index}"), "text": text })
    }

    #[test]
    fn compiles_chapters_in_order_and_lists_them_as_parents() {
        let mut h = Harness::new();
        let c2 = h.add_blob("chapter-v1", chapter("b1", 2, "Third part."));
        let c0 = h.add_blob("chapter-v1", chapter("b1", 0, "First part here."));
        let c1 = h.add_blob("chapter-v1", chapter("b1", 1, "Second."));
        h.add_blob("chapter-v1", chapter("other", 0, "Not this book."));
        h.add_blob_for_tenant(
            "someone-else",
            "chapter-v1",
            chapter("b1", 3, "Another tenant."),
        );
        let out = h
            .process::<BookCompile>(
                "book-compile-request-v1",
                json!({ "book_id": "b1", "title": "My Book" }),
            )
            .unwrap();
        assert_eq!(out.len(), 1);
        let book = &out[0].json;
        assert_eq!(book["words"], 6);
        let ids: Vec<&str> = book["chapters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["blob_id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, [c0.as_str(), c1.as_str(), c2.as_str()]);
        assert_eq!(out[0].extra_parents, [c0, c1, c2]);
        assert!(
            book["text"]
                .as_str()
                .unwrap()
                .starts_with("# My Book\n\n## Chapter 0\n\nFirst part here.\n")
        );
    }

    #[test]
    fn waits_for_the_expected_chapters() {
        let mut h = Harness::new();
        h.add_blob("chapter-v1", chapter("b1", 0, "Only one."));
        let err = h
            .process::<BookCompile>(
                "book-compile-request-v1",
                json!({ "book_id": "b1", "title": "T", "expected_chapters": 2 }),
            )
            .unwrap_err();
        assert_eq!(err, Error::retryable("book `b1` has 1 of 2 chapters"));
        let err = h
            .process::<BookCompile>(
                "book-compile-request-v1",
                json!({ "book_id": "nope", "title": "T" }),
            )
            .unwrap_err();
        assert!(matches!(err, Error::Retryable(_)));
    }

    #[test]
    fn bad_input_is_invalid_input_not_a_panic() {
        let mut h = Harness::new();
        let err = h
            .process::<BookCompile>("book-compile-request-v1", json!({ "title": "T" }))
            .unwrap_err();
        assert!(
            matches!(err, Error::InvalidInput(ref m) if m.contains("book_id")),
            "{err}"
        );
    }
}
