//! The allocator the `reyna` binary ships with (`host/cli/src/main.rs`),
//! declared by every in-process bench (`#[path] mod allocator;`) so each
//! measures what runs in production.

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;
