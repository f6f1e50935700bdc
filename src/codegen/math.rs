//! Transcendental functions for the kernels.
//!
//! `exp`, `sigmoid` and `tanh` are emitted inline as Cranelift IR that works
//! on one f32 or on f32x4 lanes alike (Cephes' `expf` range reduction and
//! polynomial), so hot loops never leave native code. `log` is rare in hot
//! loops (one per row in `log_softmax`) and calls [`nnc_log`] per lane.
//!
//! Accuracy, measured by `tests/kernel_math.rs` against f64 on a 0.001 grid
//! over [-20, 20]: `exp` 7.6e-8 relative (under one f32 ulp), `sigmoid`
//! 8.8e-8 and `tanh` 1.7e-7 absolute. `exp` saturates at e^±88.3 instead of
//! overflowing, so a softmax of huge logits stays finite.

use cranelift_codegen::ir::{InstBuilder, MemFlagsData, Value, types};
use cranelift_frontend::FunctionBuilder;

pub extern "C" fn nnc_log(x: f32) -> f32 {
    x.ln()
}

type MathFn = extern "C" fn(f32) -> f32;

/// Symbol name and address of every function the kernels may call.
pub const SYMBOLS: &[(&str, *const u8)] = &[("nnc_log", nnc_log as MathFn as *const u8)];

/// Lane order for bitcasts between vector types (x86 is little-endian).
const LANES: MemFlagsData = MemFlagsData::new().with_endianness(cranelift_codegen::ir::Endianness::Little);

fn constant(b: &mut FunctionBuilder, c: f32, vector: bool) -> Value {
    let value = b.ins().f32const(c);
    if vector { b.ins().splat(types::F32X4, value) } else { value }
}

/// `a·x + c` (Horner step).
fn mul_add(b: &mut FunctionBuilder, a: Value, x: Value, c: f32, vector: bool) -> Value {
    let c = constant(b, c, vector);
    let product = b.ins().fmul(a, x);
    b.ins().fadd(product, c)
}

/// e^x: x = n·ln2 + r with |r| ≤ ln2/2, e^r by a degree-7 polynomial,
/// 2^n by building the float's exponent bits.
pub fn exp(b: &mut FunctionBuilder, x: Value, vector: bool) -> Value {
    let high = constant(b, 88.3, vector);
    let low = constant(b, -87.3, vector);
    let x = b.ins().fmin(x, high);
    let x = b.ins().fmax(x, low);
    let log2e = constant(b, std::f32::consts::LOG2_E, vector);
    let scaled = b.ins().fmul(x, log2e);
    let n = b.ins().nearest(scaled);
    // r = x − n·ln2, with ln2 split in two for precision.
    let ln2_high = constant(b, 0.693_359_4, vector);
    let ln2_low = constant(b, -2.121_944_4e-4, vector);
    let t = b.ins().fmul(n, ln2_high);
    let r = b.ins().fsub(x, t);
    let t = b.ins().fmul(n, ln2_low);
    let r = b.ins().fsub(r, t);
    let mut p = constant(b, 1.987_569_1e-4, vector);
    for c in [1.398_199_9e-3, 8.333_452e-3, 4.166_579_6e-2, 1.666_666_5e-1, 0.5] {
        p = mul_add(b, p, r, c, vector);
    }
    let r2 = b.ins().fmul(r, r);
    let p = b.ins().fmul(p, r2);
    let p = b.ins().fadd(p, r);
    let one = constant(b, 1.0, vector);
    let p = b.ins().fadd(p, one);
    // 2^n = bits (n + 127) << 23.
    let (int, float) = if vector { (types::I32X4, types::F32X4) } else { (types::I32, types::F32) };
    let n_int = b.ins().fcvt_to_sint_sat(int, n);
    let bias = if vector {
        let c = b.ins().iconst(types::I32, 127);
        b.ins().splat(types::I32X4, c)
    } else {
        b.ins().iconst(types::I32, 127)
    };
    let biased = b.ins().iadd(n_int, bias);
    let bits = b.ins().ishl_imm_u(biased, 23);
    let flags = if vector { LANES } else { MemFlagsData::new() };
    let scale = b.ins().bitcast(float, flags, bits);
    b.ins().fmul(p, scale)
}

/// 1 / (1 + e^−x)
pub fn sigmoid(b: &mut FunctionBuilder, x: Value, vector: bool) -> Value {
    let minus = b.ins().fneg(x);
    let e = exp(b, minus, vector);
    let one = constant(b, 1.0, vector);
    let denominator = b.ins().fadd(one, e);
    b.ins().fdiv(one, denominator)
}

/// 1 − 2 / (e^2x + 1)
pub fn tanh(b: &mut FunctionBuilder, x: Value, vector: bool) -> Value {
    let twice = b.ins().fadd(x, x);
    let e = exp(b, twice, vector);
    let one = constant(b, 1.0, vector);
    let two = constant(b, 2.0, vector);
    let denominator = b.ins().fadd(e, one);
    let fraction = b.ins().fdiv(two, denominator);
    b.ins().fsub(one, fraction)
}
