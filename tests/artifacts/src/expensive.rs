//! Components that are cheap to send and expensive to compile, built by
//! hand: the wasm binary format is simple enough that a few sections of
//! bytes are clearer than a dependency.

use crate::manifest_edit::write_leb;

fn section(id: u8, contents: &[u8], out: &mut Vec<u8>) {
    out.push(id);
    write_leb(out, contents.len());
    out.extend_from_slice(contents);
}

/// A valid core module with `functions` functions of type `[] -> []`, each
/// nesting `depth` empty blocks (two bytes a level).
pub fn nested_module(functions: usize, depth: usize) -> Vec<u8> {
    let mut body = vec![0u8]; // no locals
    for _ in 0..depth {
        body.extend_from_slice(&[0x02, 0x40]); // block with no result
    }
    body.extend(std::iter::repeat_n(0x0bu8, depth + 1));
    module(functions, &body)
}

/// A valid core module with one function of type `[] -> []` that declares
/// `locals` i32 locals and does nothing.
pub fn module_with_locals(locals: usize) -> Vec<u8> {
    let mut body = vec![1u8]; // one run of locals
    write_leb(&mut body, locals);
    body.extend_from_slice(&[0x7f, 0x0b]); // i32; end
    module(1, &body)
}

/// A core module of `functions` functions of type `[] -> []`, each `body`.
fn module(functions: usize, body: &[u8]) -> Vec<u8> {
    let mut module = b"\0asm\x01\0\0\0".to_vec();
    section(1, &[1, 0x60, 0, 0], &mut module);
    let mut funcs = Vec::new();
    write_leb(&mut funcs, functions);
    funcs.extend(std::iter::repeat_n(0u8, functions));
    section(3, &funcs, &mut module);
    let mut code = Vec::new();
    write_leb(&mut code, functions);
    for _ in 0..functions {
        write_leb(&mut code, body.len());
        code.extend_from_slice(body);
    }
    section(10, &code, &mut module);
    module
}

/// `component` with `module` appended as one more core module section: still
/// a valid component with the same manifest and world (the module is never
/// instantiated), but wasmtime compiles every module it holds.
pub fn with_extra_module(component: &[u8], module: &[u8]) -> Vec<u8> {
    let mut out = component.to_vec();
    section(1, module, &mut out); // component section 1: core module
    out
}
