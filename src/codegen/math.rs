//! Transcendental functions for the kernels.
//!
//! `exp`, `sigmoid`, `tanh` and `log` are emitted inline as Cranelift IR that
//! works on one f32 or on f32x4 lanes alike (Cephes' `expf` and `logf` range
//! reductions and polynomials), so kernels never call out of native code.
//!
//! Accuracy, measured by `tests/kernel_math.rs` against f64 on a 0.001 grid
//! over [-20, 20]: `exp` 7.6e-8 relative (under one f32 ulp), `sigmoid`
//! 8.8e-8 and `tanh` 1.7e-7 absolute. `exp` saturates at e^±88.3 instead of
//! overflowing, so a softmax of huge logits stays finite.
//!
//! `log`, measured by this file's tests over every positive finite f32
//! (subnormals included, scalar and f32x4 alike): 8.1e-8 relative, 0.83 ulp.
//! Subnormals are scaled into the normal range first, not flushed. ln(±0) =
//! −∞, ln(+∞) = +∞, and a negative or NaN input gives NaN.

use cranelift_codegen::ir::condcodes::FloatCC;
use cranelift_codegen::ir::{InstBuilder, MemFlagsData, Value, types};
use cranelift_frontend::FunctionBuilder;

/// Lane order for bitcasts between vector types (x86 is little-endian).
const LANES: MemFlagsData = MemFlagsData::new().with_endianness(cranelift_codegen::ir::Endianness::Little);

fn constant(b: &mut FunctionBuilder, c: f32, vector: bool) -> Value {
    let value = b.ins().f32const(c);
    if vector { b.ins().splat(types::F32X4, value) } else { value }
}

fn int_constant(b: &mut FunctionBuilder, c: i32, vector: bool) -> Value {
    let value = b.ins().iconst(types::I32, i64::from(c));
    if vector { b.ins().splat(types::I32X4, value) } else { value }
}

/// `cond ? yes : no`, for `cond` an `fcmp` of one f32 or of f32x4 lanes.
fn choose(b: &mut FunctionBuilder, cond: Value, yes: Value, no: Value, vector: bool) -> Value {
    if vector {
        let mask = b.ins().bitcast(types::F32X4, LANES, cond);
        b.ins().bitselect(mask, yes, no)
    } else {
        b.ins().select(cond, yes, no)
    }
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
    // Clamp with compare-and-select rather than fmin/fmax, whose NaN rules
    // cost Cranelift a branch (scalar) or six instructions (f32x4); a NaN
    // fails both tests and stays NaN, as divergence detection needs.
    let high = constant(b, 88.3, vector);
    let low = constant(b, -87.3, vector);
    let above = b.ins().fcmp(FloatCC::GreaterThan, x, high);
    let x = choose(b, above, high, x, vector);
    let below = b.ins().fcmp(FloatCC::LessThan, x, low);
    let x = choose(b, below, low, x, vector);
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
    // 2^n = bits (n + 127) << 23. n is a whole number in [-126, 127], and
    // n + 1.5·2^23 has n + 0x4b40_0000 as its bits: the integer without a
    // float-to-int conversion (which Cranelift checks for overflow).
    let (int, float) = if vector { (types::I32X4, types::F32X4) } else { (types::I32, types::F32) };
    let flags = if vector { LANES } else { MemFlagsData::new() };
    let magic = constant(b, 12_582_912.0, vector);
    let shifted = b.ins().fadd(n, magic);
    let n_bits = b.ins().bitcast(int, flags, shifted);
    let bias = int_constant(b, 127 - 0x4b40_0000, vector);
    let biased = b.ins().iadd(n_bits, bias);
    let bits = b.ins().ishl_imm_u(biased, 23);
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

/// Bits of √½ as an f32: mantissas are reduced to [√½, √2).
const SQRT_HALF_BITS: i32 = 0x3f35_04f3;

/// ln x: x = 2^e·m with m in [√½, √2) taken from the float's bits, then
/// Cephes' `logf`: ln m = f − f²/2 + f³·P(f) with f = m − 1 (exact) and P of
/// degree 8, plus e·ln2 with ln2 split in two for precision. Subnormals are
/// first scaled by 2^23 (exactly) into the normal range. ln(±0) = −∞,
/// ln(+∞) = +∞, and negatives or NaN give NaN.
pub fn log(b: &mut FunctionBuilder, x: Value, vector: bool) -> Value {
    let (int, float) = if vector { (types::I32X4, types::F32X4) } else { (types::I32, types::F32) };
    let flags = if vector { LANES } else { MemFlagsData::new() };
    // Subnormals: y = x·2^23 and an exponent bias of 127 + 23.
    let smallest_normal = constant(b, f32::MIN_POSITIVE, vector);
    let subnormal = b.ins().fcmp(FloatCC::LessThan, x, smallest_normal);
    let two_23 = constant(b, 8_388_608.0, vector);
    let scaled = b.ins().fmul(x, two_23);
    let y = choose(b, subnormal, scaled, x, vector);
    let bias_subnormal = constant(b, -150.0, vector);
    let bias_normal = constant(b, -127.0, vector);
    let bias = choose(b, subnormal, bias_subnormal, bias_normal, vector);
    // Adding bits(1) − bits(√½) carries into the exponent field exactly when
    // the mantissa is ≥ √½; the low 23 bits plus bits(√½) are then m's bits.
    let bits = b.ins().bitcast(int, flags, y);
    let offset = int_constant(b, 0x3f80_0000 - SQRT_HALF_BITS, vector);
    let shifted = b.ins().iadd(bits, offset);
    let exponent = b.ins().ushr_imm_u(shifted, 23);
    let fraction_mask = int_constant(b, 0x007f_ffff, vector);
    let fraction = b.ins().band(shifted, fraction_mask);
    let sqrt_half = int_constant(b, SQRT_HALF_BITS, vector);
    let m_bits = b.ins().iadd(fraction, sqrt_half);
    let m = b.ins().bitcast(float, flags, m_bits);
    let e = b.ins().fcvt_from_sint(float, exponent);
    let e = b.ins().fadd(e, bias);
    let one = constant(b, 1.0, vector);
    let f = b.ins().fsub(m, one);
    let mut p = constant(b, 7.037_683_6e-2, vector);
    for c in [
        -1.151_461e-1,
        1.167_699_84e-1,
        -1.242_014_1e-1,
        1.424_932_3e-1,
        -1.666_805_7e-1,
        2.000_071_4e-1,
        -2.499_999_4e-1,
        3.333_333e-1,
    ] {
        p = mul_add(b, p, f, c, vector);
    }
    let f2 = b.ins().fmul(f, f);
    let p = b.ins().fmul(p, f);
    let p = b.ins().fmul(p, f2);
    // Small terms first: e·ln2_low − f²/2 + f³·P(f), then f, then e·ln2_high.
    let ln2_low = constant(b, -2.121_944_4e-4, vector);
    let t = b.ins().fmul(e, ln2_low);
    let p = b.ins().fadd(p, t);
    let half = constant(b, 0.5, vector);
    let t = b.ins().fmul(f2, half);
    let p = b.ins().fsub(p, t);
    let r = b.ins().fadd(f, p);
    let ln2_high = constant(b, 0.693_359_4, vector);
    let t = b.ins().fmul(e, ln2_high);
    let r = b.ins().fadd(r, t);
    // Special values, without branches.
    let infinity = constant(b, f32::INFINITY, vector);
    let is_infinity = b.ins().fcmp(FloatCC::Equal, x, infinity);
    let r = choose(b, is_infinity, infinity, r, vector);
    let zero = constant(b, 0.0, vector);
    let is_zero = b.ins().fcmp(FloatCC::Equal, x, zero);
    let minus_infinity = constant(b, f32::NEG_INFINITY, vector);
    let r = choose(b, is_zero, minus_infinity, r, vector);
    let invalid = b.ins().fcmp(FloatCC::UnorderedOrLessThan, x, zero);
    let nan = constant(b, f32::NAN, vector);
    choose(b, invalid, nan, r, vector)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cranelift_codegen::ir::AbiParam;
    use cranelift_codegen::settings::{self, Configurable};
    use cranelift_frontend::FunctionBuilderContext;
    use cranelift_jit::{JITBuilder, JITModule};
    use cranelift_module::{Linkage, Module, default_libcall_names};

    /// One of this file's functions compiled on its own: `fn(f32) -> f32`,
    /// or (vector) a function that reads four floats at its first argument
    /// and writes the results at its second.
    struct Jit {
        _module: JITModule,
        code: *const u8,
    }

    impl Jit {
        fn new(vector: bool) -> Jit {
            Jit::of(log, vector)
        }

        fn of(function: fn(&mut FunctionBuilder, Value, bool) -> Value, vector: bool) -> Jit {
            let mut flags = settings::builder();
            flags.set("opt_level", "speed").expect("a flag");
            flags.set("enable_verifier", "true").expect("a flag");
            let isa =
                cranelift_native::builder().expect("a host ISA").finish(settings::Flags::new(flags)).expect("an ISA");
            let mut module = JITModule::new(JITBuilder::with_isa(isa, default_libcall_names()));
            let pointer = module.target_config().pointer_type();
            let mut ctx = module.make_context();
            if vector {
                ctx.func.signature.params.extend([AbiParam::new(pointer), AbiParam::new(pointer)]);
            } else {
                ctx.func.signature.params.push(AbiParam::new(types::F32));
                ctx.func.signature.returns.push(AbiParam::new(types::F32));
            }
            let id = module.declare_function("log", Linkage::Export, &ctx.func.signature).expect("declares");
            let mut fctx = FunctionBuilderContext::new();
            {
                let mut b = FunctionBuilder::new(&mut ctx.func, &mut fctx);
                let block = b.create_block();
                b.append_block_params_for_function_params(block);
                b.switch_to_block(block);
                let params = b.block_params(block).to_vec();
                if vector {
                    let flags = MemFlagsData::new();
                    let x = b.ins().load(types::F32X4, flags, params[0], 0);
                    let y = function(&mut b, x, true);
                    b.ins().store(flags, y, params[1], 0);
                    b.ins().return_(&[]);
                } else {
                    let y = function(&mut b, params[0], false);
                    b.ins().return_(&[y]);
                }
                b.seal_all_blocks();
                b.finalize(module.target_config());
            }
            module.define_function(id, &mut ctx).expect("compiles");
            module.clear_context(&mut ctx);
            module.finalize_definitions().expect("finalizes");
            let code = module.get_finalized_function(id);
            Jit { _module: module, code }
        }

        fn scalar(&self, xs: &[f32]) -> Vec<f32> {
            // SAFETY: compiled above with this signature.
            let f = unsafe { std::mem::transmute::<*const u8, extern "C" fn(f32) -> f32>(self.code) };
            xs.iter().map(|&x| f(x)).collect()
        }

        fn vector(&self, xs: &[f32]) -> Vec<f32> {
            // SAFETY: compiled above with this signature; each call reads
            // and writes 4 floats, exactly one `chunks_exact(4)` chunk.
            let f = unsafe { std::mem::transmute::<*const u8, extern "C" fn(*const f32, *mut f32)>(self.code) };
            let mut ys = vec![0.0; xs.len().next_multiple_of(4)];
            let mut padded = xs.to_vec();
            padded.resize(ys.len(), 1.0);
            for (x, y) in padded.chunks_exact(4).zip(ys.chunks_exact_mut(4)) {
                f(x.as_ptr(), y.as_mut_ptr());
            }
            ys.truncate(xs.len());
            ys
        }
    }

    /// 1e-30 to 1e30 log-spaced, [0.5, 2] densely, subnormals, and the ends
    /// of the f32 range.
    fn inputs() -> Vec<f32> {
        let mut xs: Vec<f32> = (0..=60_000).map(|i| 10f64.powf(-30.0 + i as f64 * 0.001) as f32).collect();
        xs.extend((0..=40_000).map(|i| 0.5 + i as f32 * (1.5 / 40_000.0)));
        xs.extend((0..=2_000).map(|i| 10f64.powf(-45.0 + i as f64 * 0.004) as f32).filter(|x| *x > 0.0));
        xs.extend([f32::from_bits(1), f32::MIN_POSITIVE, f32::MAX, 1.0, std::f32::consts::SQRT_2, 0.5f32.sqrt()]);
        xs
    }

    /// Max relative error against f64 (exact at x = 1, where ln x = 0).
    fn max_error(xs: &[f32], ys: &[f32]) -> (f64, f32) {
        xs.iter().zip(ys).fold((0.0, 1.0), |(worst, at), (&x, &y)| {
            let want = (x as f64).ln();
            let err = if want == 0.0 { (y as f64).abs() } else { (y as f64 - want).abs() / want.abs() };
            assert!(!err.is_nan(), "log({x:e}) = {y}");
            if err > worst { (err, x) } else { (worst, at) }
        })
    }

    #[test]
    fn log_is_within_three_ulp() {
        let xs = inputs();
        let scalar = max_error(&xs, &Jit::new(false).scalar(&xs));
        let vector = max_error(&xs, &Jit::new(true).vector(&xs));
        println!(
            "log: max relative error {:.3e} at {:e} (scalar), {:.3e} at {:e} (f32x4)",
            scalar.0, scalar.1, vector.0, vector.1
        );
        assert!(scalar.0 < 3.0 * f32::EPSILON as f64, "scalar {:.3e} at {:e}", scalar.0, scalar.1);
        assert!(vector.0 < 3.0 * f32::EPSILON as f64, "vector {:.3e} at {:e}", vector.0, vector.1);
    }

    /// Every positive finite f32, subnormals included (over a minute):
    /// `cargo test --release --lib codegen::math -- --ignored --nocapture`.
    #[test]
    #[ignore = "exhaustive, slow"]
    fn log_exhaustive() {
        let threads: Vec<_> = [false, true]
            .into_iter()
            .map(|vector| {
                std::thread::spawn(move || {
                    let jit = Jit::new(vector);
                    let (mut relative, mut ulps) = ((0.0, 1.0), (0.0, 1.0));
                    let end = f32::INFINITY.to_bits();
                    for start in (1..end).step_by(1 << 20) {
                        let xs: Vec<f32> = (start..end.min(start + (1 << 20))).map(f32::from_bits).collect();
                        let ys = if vector { jit.vector(&xs) } else { jit.scalar(&xs) };
                        for (&x, &y) in xs.iter().zip(&ys) {
                            let want = (x as f64).ln();
                            let err = (y as f64 - want).abs();
                            let rounded = (want as f32).abs();
                            let ulp = (f32::from_bits(rounded.to_bits() + 1) - rounded) as f64;
                            if want != 0.0 && err / want.abs() > relative.0 {
                                relative = (err / want.abs(), x);
                            }
                            if err / ulp > ulps.0 {
                                ulps = (err / ulp, x);
                            }
                        }
                    }
                    (vector, relative, ulps)
                })
            })
            .collect();
        for thread in threads {
            let (vector, relative, ulps) = thread.join().expect("no panic");
            let name = if vector { "f32x4" } else { "scalar" };
            println!(
                "log ({name}): max relative error {:.3e} at {:e}, {:.3} ulp at {:e}",
                relative.0, relative.1, ulps.0, ulps.1
            );
            assert!(relative.0 < 3.0 * f32::EPSILON as f64, "{name}: {:.3e} at {:e}", relative.0, relative.1);
        }
    }

    #[test]
    fn log_special_values() {
        let xs = [0.0, -0.0, -1.0, -f32::MIN_POSITIVE, f32::NEG_INFINITY, f32::INFINITY, f32::NAN, -f32::NAN];
        let want =
            [f32::NEG_INFINITY, f32::NEG_INFINITY, f32::NAN, f32::NAN, f32::NAN, f32::INFINITY, f32::NAN, f32::NAN];
        for (name, ys) in [("scalar", Jit::new(false).scalar(&xs)), ("vector", Jit::new(true).vector(&xs))] {
            for ((x, y), want) in xs.iter().zip(ys).zip(want) {
                assert!(y == want || (y.is_nan() && want.is_nan()), "{name} log({x}) = {y}, not {want}");
            }
        }
    }

    #[test]
    fn exp_special_values() {
        let xs = [0.0, 1.0, -1.0, 100.0, -100.0, f32::INFINITY, f32::NEG_INFINITY, f32::NAN];
        for (name, ys) in [("scalar", Jit::of(exp, false).scalar(&xs)), ("vector", Jit::of(exp, true).vector(&xs))] {
            assert_eq!(ys[0], 1.0, "{name}");
            assert!((ys[1] - std::f32::consts::E).abs() < 1e-6 && (ys[2] - 1.0 / std::f32::consts::E).abs() < 1e-7);
            // Saturated at e^±88.3 / e^-87.3: finite, so a softmax of huge logits stays finite.
            for (x, y) in xs.iter().zip(&ys).skip(3).take(4) {
                assert!(y.is_finite() && *y > 0.0, "{name} exp({x}) = {y}");
            }
            assert!(ys[3] > 1e38 && ys[5] > 1e38 && ys[4] < 1e-37 && ys[6] < 1e-37, "{name} {ys:?}");
            assert!(ys[7].is_nan(), "{name}: exp(NaN) must stay NaN (divergence detection reads it)");
        }
    }
}
