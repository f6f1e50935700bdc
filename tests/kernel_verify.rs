//! The kernel-IR verifier (`kernel::verify`): it accepts every kernel the
//! examples lower to, and it rejects kernels broken by hand — each rule at
//! least once — naming the offending statement's line in the printed kernel.

use nnc::kernel::{self, BufferKind, Expr, Kernel, KernelKind, LoopVar, Stmt, VerifyError, verify};
use nnc::pipeline;

/// The train, eval and predict kernels of an example, at `batch` rows.
fn kernels(model: &str, batch: usize) -> Vec<Kernel> {
    let path = format!("{}/examples/{model}.nn", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(path).expect("example");
    let program = pipeline::frontend(&text).unwrap_or_else(|_| panic!("{model} checks")).program;
    let graphs = pipeline::graphs(&program);
    let (train, eval) = pipeline::kernels(&graphs, batch, 100).expect("lowers");
    let predict = kernel::lower(&graphs.eval, KernelKind::Predict, batch).expect("lowers");
    vec![train, eval, predict]
}

/// The training kernel of an example at batch 16, as `vectorize` left it.
fn train(model: &str) -> Kernel {
    kernels(model, 16).remove(0)
}

/// The same as `lower` built it, before `vectorize`'s decisions.
fn lowered(model: &str) -> Kernel {
    let mut k = train(model);
    k.vector_loops.clear();
    k.blocked_rows.clear();
    k.written_out.clear();
    k.paired_loops.clear();
    k
}

/// Every statement of `body`, mutably, each loop before its body.
fn each_stmt(body: &mut [Stmt], f: &mut impl FnMut(&mut Stmt)) {
    for stmt in body {
        f(stmt);
        if let Stmt::Loop { body, .. } = stmt {
            each_stmt(body, f);
        }
    }
}

/// The error, checked to name and mark the first line that starts with
/// `marker`.
fn rejected(kernel: &Kernel, marker: &str) -> VerifyError {
    let err = verify(kernel).expect_err("the broken kernel is rejected");
    let text = kernel::print(kernel);
    let line = text.lines().position(|l| l.trim_start().starts_with(marker)).expect("the marker is printed") + 1;
    assert_eq!(err.line, line, "{err}");
    let listing: Vec<&str> = err.listing.lines().collect();
    assert!(listing[line].trim_start().starts_with('^') && listing[line].ends_with(&err.message), "{err}");
    err
}

#[test]
fn every_example_kernel_verifies() {
    let dir = format!("{}/examples", env!("CARGO_MANIFEST_DIR"));
    let mut checked = 0;
    for entry in std::fs::read_dir(dir).expect("examples") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "nn") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("example");
        // Examples whose categories come from the data file need it to check.
        let Ok(frontend) = pipeline::frontend(&text) else { continue };
        let graphs = pipeline::graphs(&frontend.program);
        for batch in [1, 16] {
            let (train, eval) = pipeline::kernels(&graphs, batch, 100).expect("lowers");
            let predict = kernel::lower(&graphs.eval, KernelKind::Predict, batch).expect("lowers");
            for k in [train, eval, predict] {
                verify(&k).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                checked += 1;
            }
        }
    }
    assert!(checked >= 60, "checked {checked} kernels");
}

#[test]
fn a_store_out_of_bounds_is_named() {
    let mut k = lowered("iris");
    let mut marker = String::new();
    each_stmt(&mut k.body, &mut |s| {
        if let Stmt::Store { buffer, index, .. } = s
            && marker.is_empty()
        {
            index.terms.clear();
            index.offset = 777_777;
            marker = format!("b{}[777777] =", buffer.0);
        }
    });
    let err = rejected(&k, &marker);
    assert!(err.message.contains("out of bounds"), "{err}");
}

#[test]
fn a_store_to_data_is_rejected() {
    let mut k = lowered("iris");
    let input = k.buffers.iter().position(|b| matches!(b.kind, BufferKind::Input(_))).expect("an input") as u32;
    let mut marker = String::new();
    each_stmt(&mut k.body, &mut |s| {
        if let Stmt::Store { buffer, index, .. } = s
            && marker.is_empty()
        {
            buffer.0 = input;
            index.terms.clear();
            index.offset = 0;
            marker = format!("b{input}[0] =");
        }
    });
    let err = rejected(&k, &marker);
    assert!(err.message.contains("data (read-only)"), "{err}");
}

#[test]
fn an_evaluation_kernel_may_not_update_parameters() {
    let mut k = lowered("iris");
    k.kind = KernelKind::Eval;
    // The first statement that stores to a parameter.
    let mut marker = String::new();
    kernel::walk(&k.body, &mut |s| {
        if let Stmt::Store { buffer, .. } = s
            && matches!(k.buffers[buffer.0 as usize].kind, BufferKind::Param(_))
            && marker.is_empty()
        {
            marker = format!("b{}[", buffer.0);
        }
    });
    let err = rejected(&k, &marker);
    assert!(err.message.contains("may only read"), "{err}");
}

#[test]
fn blocked_rows_that_store_the_same_elements_are_rejected() {
    let mut k = train("digits");
    let (row, rows) = *k.blocked_rows.first().expect("digits blocks a row loop");
    let mut marker = String::new();
    each_stmt(&mut k.body, &mut |s| {
        if let Stmt::Loop { var, body, .. } = s
            && *var == row
        {
            // Every row stores where row 0 does.
            each_stmt(body, &mut |s| {
                if let Stmt::Store { buffer, index, .. } = s
                    && marker.is_empty()
                {
                    index.terms.retain(|(v, _)| *v != row);
                    marker = format!(
                        "b{}[{}",
                        buffer.0,
                        index.terms.first().map_or(String::new(), |(v, _)| format!("i{}", v.0))
                    );
                }
            });
        }
    });
    assert!(!marker.is_empty(), "a store in the blocked loop");
    let text = kernel::print(&k);
    let err = verify(&k).expect_err("rejected");
    assert!(err.message.contains("blocked rows") && err.message.contains("not independent"), "{err}");
    assert!(
        text.lines().nth(err.line - 1).unwrap().contains(&format!("({rows} at a time)")),
        "names the row loop: {err}"
    );
    // The same kernel without the blocking is fine: one row at a time.
    k.blocked_rows.clear();
    verify(&k).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn vector_lanes_that_store_the_same_element_are_rejected() {
    let mut k = train("iris");
    let lane = *k.vector_loops.first().expect("iris has a vector loop");
    each_stmt(&mut k.body, &mut |s| {
        if let Stmt::Loop { var, body, .. } = s
            && *var == lane
        {
            each_stmt(body, &mut |s| {
                if let Stmt::Store { index, .. } = s {
                    index.terms.retain(|(v, _)| *v != lane);
                }
            });
        }
    });
    let err = verify(&k).expect_err("rejected");
    assert!(err.message.starts_with(&format!("lanes of i{} are not independent", lane.0)), "{err}");
    let text = kernel::print(&k);
    assert!(text.lines().nth(err.line - 1).unwrap().contains("(f32x4)"), "names the vector loop: {err}");
}

#[test]
fn a_local_read_before_it_is_assigned_is_rejected() {
    let mut k = lowered("iris");
    // Drop the first `l = 0` that starts a reduction.
    let mut dropped = None;
    each_stmt(&mut k.body, &mut |s| {
        if let Stmt::Loop { body, .. } = s
            && dropped.is_none()
            && let Some(at) = body.iter().position(|s| matches!(s, Stmt::Assign { value: Expr::Const(_), .. }))
        {
            let Stmt::Assign { local, .. } = body.remove(at) else { unreachable!() };
            dropped = Some(local);
        }
    });
    let local = dropped.expect("iris has a reduction");
    let err = verify(&k).expect_err("rejected");
    assert_eq!(err.message, format!("l{} is read before it is assigned", local.0), "{err}");
}

#[test]
fn a_decision_about_a_missing_loop_is_rejected() {
    let mut k = train("iris");
    k.written_out.push(LoopVar(k.n_loop_vars - 1 + 1000));
    let err = verify(&k).expect_err("rejected");
    assert_eq!(err.line, 1, "{err}");
    assert!(err.message.contains("no loop binds"), "{err}");
}

#[test]
fn a_vector_loop_inside_another_is_rejected() {
    let mut k = train("digits");
    let mut inner = None;
    for &lane in &k.vector_loops {
        each_stmt(&mut k.body.clone(), &mut |s| {
            if let Stmt::Loop { var, body, .. } = s
                && *var == lane
                && inner.is_none()
            {
                inner = body.iter().find_map(|s| match s {
                    Stmt::Loop { var, .. } => Some(*var),
                    _ => None,
                });
            }
        });
    }
    let inner = inner.expect("a vector loop with a loop inside");
    k.vector_loops.push(inner);
    let err = verify(&k).expect_err("rejected");
    assert!(err.message.contains("inside vector loop"), "{err}");
}
