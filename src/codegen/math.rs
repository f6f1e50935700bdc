//! Transcendental functions the kernels call: f32 in, f32 out, C ABI.
//!
//! These are the one place native code leaves the JIT'd function. Each is
//! registered with the JIT under its symbol name.

pub extern "C" fn nnc_exp(x: f32) -> f32 {
    x.exp()
}

pub extern "C" fn nnc_log(x: f32) -> f32 {
    x.ln()
}

pub extern "C" fn nnc_tanh(x: f32) -> f32 {
    x.tanh()
}

/// `1 / (1 + e^-x)`, written so that neither tail overflows.
pub extern "C" fn nnc_sigmoid(x: f32) -> f32 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

type MathFn = extern "C" fn(f32) -> f32;

/// Symbol name and address of every function above.
pub const SYMBOLS: &[(&str, *const u8)] = &[
    ("nnc_exp", nnc_exp as MathFn as *const u8),
    ("nnc_log", nnc_log as MathFn as *const u8),
    ("nnc_tanh", nnc_tanh as MathFn as *const u8),
    ("nnc_sigmoid", nnc_sigmoid as MathFn as *const u8),
];
