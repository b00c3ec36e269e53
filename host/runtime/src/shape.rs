//! What an upload may cost to compile: limits on a component's shape,
//! checked by reading it (fast, linear) before wasmtime compiles it, and on
//! compiles themselves (how many at once, how long). wasmtime bounds
//! neither how long nor how much memory compiling takes, and a component of
//! deeply nested blocks drove a host past 6 GiB; these limits make that
//! component a clear refusal instead.

use std::time::Duration;

use wasmparser::{Operator, Parser, Payload};

/// Limits on compiling a component ([`RuntimeConfig::compile`](crate::RuntimeConfig::compile)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileLimits {
    /// Largest body of one function, in bytes (config `compile.max-function-size`).
    pub max_function_bytes: usize,
    /// Deepest nesting of blocks, loops and ifs in one function (config
    /// `compile.max-nesting`).
    pub max_nesting: usize,
    /// Most functions with bodies across all the component's core modules
    /// (config `compile.max-functions`).
    pub max_functions: usize,
    /// Most locals one function declares (config `compile.max-locals`).
    pub max_locals: u64,
    /// Longest a compile may take before the upload is refused (config
    /// `compile.timeout`). wasmtime cannot stop a compile: one past its
    /// deadline runs to its end on its own thread, still holding its
    /// compile slot, so timed-out compiles never pile up.
    pub timeout: Duration,
    /// Compiles running at once; more wait for a slot, within their timeout
    /// (config `compile.max-compiles`).
    pub max_concurrent: usize,
}

impl Default for CompileLimits {
    fn default() -> Self {
        CompileLimits {
            max_function_bytes: 4 << 20,
            max_nesting: 1024,
            max_functions: 200_000,
            max_locals: 50_000,
            timeout: Duration::from_secs(60),
            max_concurrent: 2,
        }
    }
}

/// Why a component is refused before compiling: the limit it passes, named
/// with its config key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShapeError {
    /// A function body is too large.
    #[error(
        "function {index} is {size} bytes; the limit is {limit} bytes (compile.max-function-size)"
    )]
    FunctionTooLarge {
        /// Index among the component's function bodies.
        index: usize,
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// Blocks are nested too deep.
    #[error("function {index} nests blocks more than {limit} deep (compile.max-nesting)")]
    TooDeep {
        /// Index among the component's function bodies.
        index: usize,
        /// The limit.
        limit: usize,
    },
    /// Too many functions.
    #[error("the component has more than {limit} functions (compile.max-functions)")]
    TooManyFunctions {
        /// The limit.
        limit: usize,
    },
    /// Too many locals in a function.
    #[error("function {index} declares more than {limit} locals (compile.max-locals)")]
    TooManyLocals {
        /// Index among the component's function bodies.
        index: usize,
        /// The limit.
        limit: u64,
    },
    /// The bytes could not be read (wasmtime would refuse them too).
    #[error("malformed component: {0}")]
    Malformed(String),
}

/// Checks every function body of every core module in `bytes` (a component
/// or a core module) against `limits`, without compiling anything.
pub fn check(bytes: &[u8], limits: &CompileLimits) -> Result<(), ShapeError> {
    let malformed = |e: wasmparser::BinaryReaderError| ShapeError::Malformed(e.to_string());
    let mut index = 0usize;
    // `parse_all` walks nested modules and components in line.
    for payload in Parser::new(0).parse_all(bytes) {
        let Payload::CodeSectionEntry(body) = payload.map_err(malformed)? else {
            continue;
        };
        if index >= limits.max_functions {
            return Err(ShapeError::TooManyFunctions {
                limit: limits.max_functions,
            });
        }
        let size = body.range().len();
        if size > limits.max_function_bytes {
            return Err(ShapeError::FunctionTooLarge {
                index,
                size,
                limit: limits.max_function_bytes,
            });
        }
        let mut locals = 0u64;
        for entry in body.get_locals_reader().map_err(malformed)? {
            let (count, _) = entry.map_err(malformed)?;
            locals = locals.saturating_add(u64::from(count));
            if locals > limits.max_locals {
                return Err(ShapeError::TooManyLocals {
                    index,
                    limit: limits.max_locals,
                });
            }
        }
        let mut depth = 0usize;
        let mut operators = body.get_operators_reader().map_err(malformed)?;
        while !operators.eof() {
            match operators.read().map_err(malformed)? {
                Operator::Block { .. }
                | Operator::Loop { .. }
                | Operator::If { .. }
                | Operator::Try { .. }
                | Operator::TryTable { .. } => {
                    depth += 1;
                    if depth > limits.max_nesting {
                        return Err(ShapeError::TooDeep {
                            index,
                            limit: limits.max_nesting,
                        });
                    }
                }
                Operator::End => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
        index += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use reyna_artifacts::{module_with_locals, nested_module};

    #[test]
    fn a_module_within_the_limits_passes() {
        let limits = CompileLimits::default();
        check(&nested_module(3, 100), &limits).unwrap();
        for module in [nested_module(3, 100), module_with_locals(50_000)] {
            wasmparser::Validator::new()
                .validate_all(&module)
                .expect("the test modules are valid wasm");
        }
    }

    #[test]
    fn each_shape_limit_refuses_with_its_config_key() {
        let limits = CompileLimits {
            max_function_bytes: 1000,
            max_nesting: 50,
            max_functions: 4,
            ..CompileLimits::default()
        };
        let deep = check(&nested_module(1, 51), &limits).unwrap_err();
        assert_eq!(
            deep,
            ShapeError::TooDeep {
                index: 0,
                limit: 50
            }
        );
        assert!(deep.to_string().contains("max-nesting"));
        check(&nested_module(1, 50), &limits).unwrap();

        let large = check(
            &nested_module(1, 600),
            &CompileLimits {
                max_nesting: 10_000,
                ..limits.clone()
            },
        )
        .unwrap_err();
        assert!(
            matches!(large, ShapeError::FunctionTooLarge { limit: 1000, .. }),
            "{large}"
        );
        assert!(large.to_string().contains("max-function-size"));

        let many = check(&nested_module(5, 1), &limits).unwrap_err();
        assert_eq!(many, ShapeError::TooManyFunctions { limit: 4 });
        assert!(many.to_string().contains("max-functions"));

        let locals = check(&module_with_locals(50_001), &limits).unwrap_err();
        assert_eq!(
            locals,
            ShapeError::TooManyLocals {
                index: 0,
                limit: 50_000
            }
        );
        assert!(locals.to_string().contains("compile.max-locals"));
        check(&module_with_locals(50_000), &limits).unwrap();

        assert!(matches!(
            check(b"\0asm\x01\0\0\0\x0a\x05", &limits),
            Err(ShapeError::Malformed(_))
        ));
    }
}
