//! `.nn` text through the front end: parse, check and, when the model
//! checks, differentiate and simplify. Nothing may panic, and every
//! diagnostic must point inside the file on char boundaries and render.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nnc::diag::{Style, render};
use nnc::pipeline;

fuzz_target!(|data: &[u8]| {
    // Model files are UTF-8 (the CLI refuses anything else before parsing).
    let Ok(text) = std::str::from_utf8(data) else { return };
    match pipeline::frontend(text) {
        Ok(front) => {
            let graphs = pipeline::graphs(&front.program);
            assert!(graphs.train.output("loss").is_some());
        }
        Err(diags) => {
            assert!(!diags.is_empty());
            for diag in &diags {
                assert!(!diag.labels.is_empty(), "{diag:?}");
                for label in &diag.labels {
                    let span = label.span;
                    assert!(span.start <= span.end && span.end as usize <= text.len(), "{diag:?}");
                    assert!(text.get(span.range()).is_some(), "{diag:?}");
                }
            }
            let _ = render(&diags, "fuzz.nn", text, Style::Plain);
        }
    }
});
