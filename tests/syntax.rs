//! The syntax stage: `.nn` text → AST dump (or rendered diagnostics), snapshot
//! by snapshot, plus round-trip, span and hostile-input properties.
//!
//! Update snapshots with `INSTA_UPDATE=always cargo test --test syntax`, then
//! read the changed `tests/snapshots/syntax__*.snap` files before keeping them.

use nnc::diag::{Diagnostic, Style, render};
use nnc::span::Span;
use nnc::syntax::ast::{self, Expr, ExprKind, File, Ident, Item};
use nnc::syntax::{self, print};
use proptest::prelude::*;

/// Parses `input` and snapshots its AST dump, or its rendered diagnostics.
/// Every successful parse must also survive [`assert_round_trip`] and
/// [`assert_spans_exact`]; every failure must point inside the file.
fn check(name: &str, input: &str) {
    let actual = match syntax::parse(input) {
        Ok(file) => {
            assert_round_trip(&file);
            assert_spans_exact(input, &file);
            print::ast(&file)
        }
        Err(diags) => {
            assert_diag_spans_ok(input, &diags);
            render(&diags, "test.nn", input, Style::Plain)
        }
    };
    insta::with_settings!({ description => input, omit_expression => true }, {
        insta::assert_snapshot!(name, actual);
    });
}

/// The diagnostics for `input`, which must fail to parse.
fn errors(input: &str) -> Vec<Diagnostic> {
    match syntax::parse(input) {
        Ok(file) => panic!("expected an error, got\n{}", print::ast(&file)),
        Err(diags) => {
            assert_diag_spans_ok(input, &diags);
            diags
        }
    }
}

// ---------------------------------------------------------------------------
// Helpers: comparing ASTs without spans, checking spans

/// `file` with every span zeroed, so trees from different texts compare.
fn without_spans(file: &File) -> File {
    let mut file = file.clone();
    for item in &mut file.items {
        match item {
            Item::Data(block) => {
                block.span = Span::default();
                for decl in &mut block.decls {
                    decl.span = Span::default();
                    strip_ident(&mut decl.name);
                    decl.width.iter_mut().chain(decl.source.iter_mut()).for_each(strip_expr);
                    decl.modifiers.iter_mut().for_each(strip_expr);
                }
                for setting in &mut block.settings {
                    setting.span = Span::default();
                    strip_ident(&mut setting.name);
                    strip_expr(&mut setting.value);
                }
            }
            Item::Model(block) => {
                block.span = Span::default();
                for layer in &mut block.layers {
                    layer.span = Span::default();
                    strip_ident(&mut layer.name);
                    strip_expr(&mut layer.value);
                }
            }
            Item::Param(param) => {
                param.span = Span::default();
                strip_ident(&mut param.name);
                strip_expr(&mut param.init);
            }
            Item::Fn(decl) => {
                decl.span = Span::default();
                strip_ident(&mut decl.name);
                decl.params.iter_mut().for_each(strip_ident);
                strip_expr(&mut decl.body);
            }
            Item::Loss(loss) => {
                loss.span = Span::default();
                strip_expr(&mut loss.expr);
            }
            Item::Train(block) => {
                block.span = Span::default();
                for setting in &mut block.settings {
                    setting.span = Span::default();
                    strip_ident(&mut setting.name);
                    strip_expr(&mut setting.value);
                }
            }
        }
    }
    file
}

fn strip_ident(ident: &mut Ident) {
    ident.span = Span::default();
}

fn strip_expr(expr: &mut Expr) {
    expr.span = Span::default();
    match &mut expr.kind {
        ExprKind::Number(_) | ExprKind::Name(_) => {}
        ExprKind::Call { callee, args } => {
            strip_ident(callee);
            for arg in args {
                if let Some(name) = &mut arg.name {
                    strip_ident(name);
                }
                strip_expr(&mut arg.value);
            }
        }
        ExprKind::Neg(operand) => strip_expr(operand),
        ExprKind::Binary { lhs, rhs, .. } => {
            strip_expr(lhs);
            strip_expr(rhs);
        }
        ExprKind::List(items) => items.iter_mut().for_each(strip_expr),
        ExprKind::If { cond, then, otherwise } => {
            strip_expr(cond);
            strip_expr(then);
            strip_expr(otherwise);
        }
    }
}

/// `source(file)` parses back to the same tree, and printing is idempotent.
fn assert_round_trip(file: &File) {
    let text = print::source(file);
    let reparsed = match syntax::parse(&text) {
        Ok(reparsed) => reparsed,
        Err(diags) => {
            panic!("printed source does not parse:\n{text}\n{}", render(&diags, "printed.nn", &text, Style::Plain))
        }
    };
    assert_eq!(without_spans(&reparsed), without_spans(file), "round trip changed\n{text}");
    assert_eq!(print::source(&reparsed), text);
}

/// Every span lies inside `source` on char boundaries and covers its node's
/// text exactly: non-empty, no whitespace at either end, inside its parent.
fn assert_spans_exact(source: &str, file: &File) {
    for item in &file.items {
        let outer = item.span();
        assert_span_exact(source, outer, None);
        let inside = |span: Span| assert_span_exact(source, span, Some(outer));
        let mut exprs: Vec<&Expr> = Vec::new();
        match item {
            Item::Data(block) => {
                for decl in &block.decls {
                    inside(decl.span);
                    assert_span_exact(source, decl.name.span, Some(decl.span));
                    decl.modifiers.iter().for_each(|m| assert_span_exact(source, m.span, Some(decl.span)));
                    for expr in decl.width.iter().chain(decl.source.iter()) {
                        assert_span_exact(source, expr.span, Some(decl.span));
                        exprs.push(expr);
                    }
                }
            }
            Item::Model(block) => {
                for layer in &block.layers {
                    inside(layer.span);
                    assert_span_exact(source, layer.name.span, Some(layer.span));
                    assert_span_exact(source, layer.value.span, Some(layer.span));
                    exprs.push(&layer.value);
                }
            }
            Item::Param(param) => {
                inside(param.name.span);
                inside(param.init.span);
                exprs.push(&param.init);
            }
            Item::Fn(decl) => {
                inside(decl.name.span);
                decl.params.iter().for_each(|p| inside(p.span));
                inside(decl.body.span);
                exprs.push(&decl.body);
            }
            Item::Loss(loss) => {
                inside(loss.expr.span);
                exprs.push(&loss.expr);
            }
            Item::Train(block) => {
                for setting in &block.settings {
                    inside(setting.span);
                    assert_span_exact(source, setting.name.span, Some(setting.span));
                    assert_span_exact(source, setting.value.span, Some(setting.span));
                    exprs.push(&setting.value);
                }
            }
        }
        while let Some(expr) = exprs.pop() {
            let child = |span: Span| assert_span_exact(source, span, Some(expr.span));
            match &expr.kind {
                ExprKind::Number(_) | ExprKind::Name(_) => {}
                ExprKind::Call { callee, args } => {
                    child(callee.span);
                    for arg in args {
                        if let Some(name) = &arg.name {
                            child(name.span);
                        }
                        child(arg.value.span);
                        exprs.push(&arg.value);
                    }
                }
                ExprKind::Neg(operand) => {
                    child(operand.span);
                    exprs.push(operand);
                }
                ExprKind::Binary { lhs, rhs, .. } => {
                    child(lhs.span);
                    child(rhs.span);
                    exprs.push(lhs);
                    exprs.push(rhs);
                }
                ExprKind::List(items) => {
                    for item in items {
                        child(item.span);
                        exprs.push(item);
                    }
                }
                ExprKind::If { cond, then, otherwise } => {
                    for part in [cond, then, otherwise] {
                        child(part.span);
                        exprs.push(part);
                    }
                }
            }
        }
    }
}

fn assert_span_exact(source: &str, span: Span, parent: Option<Span>) {
    assert!(span.end as usize <= source.len(), "span {span:?} outside the file");
    let Some(covered) = source.get(span.range()) else {
        panic!("span {span:?} not on char boundaries");
    };
    assert!(!covered.is_empty(), "empty span {span:?}");
    assert_eq!(covered, covered.trim(), "span {span:?} has whitespace at its ends");
    if let Some(parent) = parent {
        assert!(parent.start <= span.start && span.end <= parent.end, "{span:?} not in {parent:?}");
    }
}

/// At least one diagnostic; each has a code and labels inside the file on
/// char boundaries.
fn assert_diag_spans_ok(source: &str, diags: &[Diagnostic]) {
    assert!(!diags.is_empty(), "an error without a diagnostic");
    for diag in diags {
        assert!(diag.code.starts_with('E'), "{diag:?}");
        assert!(!diag.labels.is_empty(), "{diag:?} points nowhere");
        for label in &diag.labels {
            let span = label.span;
            assert!(span.start <= span.end && span.end as usize <= source.len(), "{diag:?}");
            assert!(source.get(span.range()).is_some(), "{diag:?} not on char boundaries");
        }
    }
}

// ---------------------------------------------------------------------------
// The examples

const MINIMIZE: &str = "\
# minimize.nn
param x = 0
loss x^3 / 3 - x
train { optimizer = sgd(lr = 0.1)  steps = 200 }
";

const SEED: &str = "\
data {
  input  x[3]
  target y[1]
}
model {
  h     = dense(x, 2, [tanh, sigmoid], bias = false)   # one activation per neuron
  y_hat = dense(h, 1, identity, bias = false)
}
loss mse(y_hat, y)
train { optimizer = sgd(lr = 0.1)  epochs = 100  batch = 1 }
";

const IRIS: &str = "\
data { input x[4]  target y = one_hot(3) }
model {
  h   = dense(x, 8, tanh)
  out = dense(h, 3, softmax)
}
loss cross_entropy(out, y)
train {
  optimizer = sgd(lr = 0.05)
  epochs = 200
  batch = 16
  seed = 0
}
";

#[test]
fn example_minimize() {
    check("example_minimize", MINIMIZE);
}

#[test]
fn example_seed() {
    check("example_seed", SEED);
}

#[test]
fn example_iris() {
    check("example_iris", IRIS);
}

#[test]
fn examples_print_as_source() {
    let printed: Vec<String> =
        [MINIMIZE, SEED, IRIS].iter().map(|text| print::source(&syntax::parse(text).unwrap())).collect();
    insta::assert_snapshot!("examples_source", printed.join("\n----\n"));
}

// ---------------------------------------------------------------------------
// Precedence and associativity

#[test]
fn neg_binds_looser_than_pow() {
    check("prec_neg_pow", "loss -x^2");
}

#[test]
fn sub_is_left_associative() {
    check("prec_sub_chain", "loss a - b - c");
}

#[test]
fn pow_is_right_associative() {
    check("prec_pow_chain", "loss 2^3^2");
}

#[test]
fn div_mul_are_left_associative() {
    check("prec_div_mul", "loss a / b * c");
}

#[test]
fn exponent_may_be_negated() {
    check("prec_neg_exponent", "loss x^-1");
}

#[test]
fn precedence_in_source_form() {
    // Each line: input, and the fully decided reading in minimal source form.
    let cases = [
        ("-x^2", "-x^2"),
        ("(-x)^2", "(-x)^2"),
        ("a - b - c", "a - b - c"),
        ("a - (b - c)", "a - (b - c)"),
        ("2^3^2", "2^3^2"),
        ("(2^3)^2", "(2^3)^2"),
        ("a / b * c", "a / b * c"),
        ("a / (b * c)", "a / (b * c)"),
        ("x^-1", "x^-1"),
        ("x ^ - y ^ z", "x^-y^z"),
        ("-x * y", "-x * y"),
        ("-(x * y)", "-(x * y)"),
        ("a + b * c ^ d", "a + b * c^d"),
        ("((a + b)) * c", "(a + b) * c"),
        ("a - -b", "a - -b"),
        ("a--b", "a - -b"),
        ("2 * -3", "2 * -3"),
        ("- - x", "--x"),
        ("f(a + b)^2", "f(a + b)^2"),
        ("[a, b][0]", ""),
    ];
    for (input, want) in cases {
        let text = format!("loss {input}");
        match syntax::parse(&text) {
            Ok(file) => {
                let Item::Loss(loss) = &file.items[0] else { panic!() };
                assert_eq!(print::expr(&loss.expr), want, "{input}");
                assert_round_trip(&file);
            }
            Err(_) => assert_eq!(want, "", "{input} should parse"),
        }
    }
}

// ---------------------------------------------------------------------------
// Lexical details and layout

#[test]
fn comments_are_skipped() {
    check("comments", "# leading comment\nparam x = 0 # trailing ( [ {\n  # indented\nloss x # no newline at the end");
}

#[test]
fn one_line_blocks() {
    check("one_line_train", "train { optimizer = sgd(lr = 0.1)  epochs = 100 }");
    check("one_line_everything", "data{input x[2]target y}model{h=dense(x,1,tanh)}loss mse(h,y)");
}

#[test]
fn data_declarations() {
    check(
        "data_decls",
        "data {\n  input x = columns(a, b, c) standardize\n  target y[1] = col(4) clip log\n  \
         input z\n}",
    );
}

#[test]
fn numbers() {
    check("numbers", "loss [12, 0.05, .5, 1e-4, 2.5E+3, 1e16, 007, 0.1e0]");
}

#[test]
fn keywords_are_not_prefixes() {
    check("keyword_prefixes", "param datax = losses + train_ + model2 + params + inputs");
}

#[test]
fn trailing_commas_and_empty_lists() {
    check("trailing_commas", "loss f(a, b = [], c = [x,],)");
}

#[test]
fn empty_and_blank_files() {
    for input in ["", "   \n\t\r\n", "# only a comment", "# comment\n\n#another\n", "\u{feff}"] {
        assert_eq!(syntax::parse(input), Ok(File { items: Vec::new() }), "{input:?}");
    }
    check("empty_file", "");
}

#[test]
fn empty_blocks() {
    check("empty_blocks", "data {} model {} train {}");
}

#[test]
fn byte_order_mark_is_skipped() {
    let file = syntax::parse("\u{feff}loss x").unwrap();
    assert_eq!(file.items[0].span(), Span::new(3, 9));
}

#[test]
fn items_in_any_order_and_number() {
    let file = syntax::parse("loss a train {} loss b param p = 1 fn f(x) = x data {} param q = 2").unwrap();
    let kinds: Vec<&str> = file
        .items
        .iter()
        .map(|item| match item {
            Item::Data(_) => "data",
            Item::Model(_) => "model",
            Item::Param(_) => "param",
            Item::Fn(_) => "fn",
            Item::Loss(_) => "loss",
            Item::Train(_) => "train",
        })
        .collect();
    assert_eq!(kinds, ["loss", "train", "loss", "param", "fn", "data", "param"]);
}

#[test]
fn parenthesised_span_includes_the_parentheses() {
    let file = syntax::parse("loss (a + b)*c").unwrap();
    let Item::Loss(ast::LossDecl { expr, span }) = &file.items[0] else { panic!() };
    assert_eq!(*span, Span::new(0, 14));
    let ExprKind::Binary { lhs, .. } = &expr.kind else { panic!() };
    assert_eq!(lhs.span, Span::new(5, 12));
    assert!(matches!(lhs.kind, ExprKind::Binary { op: ast::BinOp::Add, .. }));
}

// ---------------------------------------------------------------------------
// Errors

#[test]
fn error_missing_close_paren() {
    check("err_missing_paren_eof", "loss mse(y_hat, y");
    check("err_missing_paren_before_item", "loss mse(y_hat, y\ntrain { epochs = 1 }");
    check("err_missing_comma", "loss mse(y_hat y)");
}

#[test]
fn error_loss_without_expression() {
    check("err_loss_empty_eof", "param x = 0\nloss");
    check("err_loss_empty_before_item", "loss\ntrain { epochs = 1 }");
}

#[test]
fn error_garbage() {
    check("err_at_sign", "param x = @");
    check("err_garbage_item", "param x = 0\n@@@");
    check("err_garbage_in_block", "model { h = dense(x, 2) ; }");
}

#[test]
fn error_unterminated_block() {
    check("err_unterminated_model", "model {\n  h = dense(x, 2)\n");
    check("err_unterminated_data", "data { input x[3]");
}

#[test]
fn error_in_declarations() {
    check("err_setting_without_eq", "train { epochs 100 }");
    check("err_reserved_keyword", "model { loss = dense(x, 1) }");
    check("err_data_decl", "data { input x 3 }");
    check("err_param_without_init", "param x\nloss x");
    check("err_number_juxtaposed", "loss 3x");
    check("err_trailing_dot", "param x = 1.");
}

#[test]
fn error_number_out_of_range() {
    check("err_number_overflow", "param x = 1e999\nloss x * 2e400");
    // Underflow is not an error: the nearest float is 0.
    assert!(syntax::parse("param x = 1e-999").is_ok());
}

#[test]
fn error_spans_in_unicode_input() {
    check("err_unicode", "loss é +");
    for input in [
        "loss é +",
        "loss x + é",
        "param ü = 1",
        "loss x # ümlaut comment\n€",
        "model { h = dense(x, 2) 日本 }",
        "loss f(\u{1F600}",
        "loss \u{feff}x",
        "loss x\u{a0}+ y",
        "loss `x`",
        "data { input x[3] é }",
    ] {
        let diags = errors(input);
        assert_eq!(diags.len(), 1, "{input:?}");
        let span = diags[0].span().unwrap();
        // The label covers the whole offending char, not a piece of it.
        assert!(!span.is_empty(), "{input:?}: {span:?}");
        let rendered = render(&diags, "test.nn", input, Style::Plain);
        assert!(rendered.contains("E0001"), "{rendered}");
    }
}

#[test]
fn messages_never_name_pest_rules() {
    let rule_names = [
        "expr",
        "product",
        "unary",
        "power",
        "exponent",
        "primary",
        "call",
        "arg",
        "paren",
        "list",
        "lparen",
        "rparen",
        "lbracket",
        "rbracket",
        "lbrace",
        "rbrace",
        "comma",
        "eq",
        "plus",
        "minus",
        "star",
        "slash",
        "caret",
        "ident",
        "keyword",
        "kw_data",
        "kw_input",
        "EOI",
        "data_decl",
        "binding",
        "setting",
        "data_block",
        "param_decl",
        "WHITESPACE",
    ];
    for input in [
        "loss",
        "loss (",
        "loss [",
        "loss f(",
        "loss f(a",
        "loss f(a =",
        "loss f(a = 1",
        "loss [1",
        "loss [1,",
        "loss 1 +",
        "loss 1 ^",
        "loss 1 ^ -",
        "loss - ",
        "data",
        "data {",
        "data { input",
        "data { input x",
        "data { input x[",
        "data { input x[3",
        "model",
        "model {",
        "model { h",
        "model { h =",
        "param",
        "param x",
        "param x =",
        "train { a = 1",
        ")",
        "}",
        "]",
        "=",
        ",",
        "1",
        "x",
        "loss 1 2",
        "data { target y = }",
    ] {
        let diags = errors(input);
        assert_eq!(diags.len(), 1);
        let message = &diags[0].message;
        assert!(message.starts_with("expected "), "{input:?}: {message}");
        for word in message.split(|c: char| !(c.is_alphanumeric() || c == '_')) {
            assert!(!rule_names.contains(&word), "{input:?}: {message}");
        }
    }
}

// ---------------------------------------------------------------------------
// Hostile input: nesting and size

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    // Brackets are rejected before pest runs, so even 100k of them are cheap.
    let n = 100_000;
    // Flat operator chains go through pest first (~2 s per 100k terms in a
    // debug build); 10k is already fifty times the limit.
    let m = 10_000;
    let deep_inputs = [
        format!("loss {}x{}", "(".repeat(n), ")".repeat(n)),
        format!("loss {}", "(".repeat(n)),
        format!("loss {}x", "f(".repeat(n)),
        format!("loss {}", "[".repeat(n)),
        format!("model {{ h = {}", "[(".repeat(n)),
        format!("loss {}x", "-".repeat(m)),
        format!("loss x{}", "^x".repeat(m)),
        format!("loss x{}", "^-x".repeat(m)),
        format!("loss x{}", " + x".repeat(m)),
        format!("loss x{}", " * x".repeat(m)),
    ];
    for input in &deep_inputs {
        let diags = errors(input);
        assert_eq!(diags.len(), 1);
        assert_eq!(diags[0].code, "E0003", "{}", &input[..40]);
    }
    check("err_too_deep", &format!("loss {}x{}", "(".repeat(201), ")".repeat(201)));
    check("err_too_long_sum", &format!("loss x{}", " + x".repeat(200)));
}

#[test]
fn nesting_up_to_the_limit_parses_on_a_small_stack() {
    let depth = syntax::MAX_DEPTH;
    let inputs = [
        format!("loss {}x{}", "(".repeat(depth - 1), ")".repeat(depth - 1)),
        format!("loss {}x{}", "f(".repeat(depth - 1), ")".repeat(depth - 1)),
        format!("loss {}x{}", "[".repeat(depth - 1), "]".repeat(depth - 1)),
        format!("loss {}x", "-".repeat(depth - 1)),
        format!("loss x{}", "^x".repeat(depth - 1)),
        format!("loss x{}", " - x".repeat(depth - 1)),
    ];
    // The smallest stack a Rust thread gets by default.
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || {
            for input in &inputs {
                let file = syntax::parse(input)
                    .unwrap_or_else(|diags| panic!("{}", render(&diags, "deep.nn", input, Style::Plain)));
                assert_round_trip(&file);
                assert!(!print::ast(&file).is_empty());
            }
        })
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn large_files_parse() {
    // ~100 KB of realistic items.
    let text = SEED.repeat(200);
    let file = syntax::parse(&text).unwrap();
    assert_eq!(file.items.len(), 800);
}

// ---------------------------------------------------------------------------
// Properties

/// Random names, none of them a keyword.
fn name() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["x", "y_hat", "tanh", "_a1", "input", "target", "datax", "e", "iff", "elsewhere"])
        .prop_map(str::to_string)
}

/// Names an expression may use: plain or dotted (`h.w`).
fn expr_name() -> impl Strategy<Value = String> {
    prop_oneof![4 => name(), 1 => prop::sample::select(vec!["h.w", "out.b", "x.then_"]).prop_map(str::to_string)]
}

fn number() -> impl Strategy<Value = f64> {
    prop_oneof![
        (0u32..1000).prop_map(f64::from),
        (0.0f64..1e3),
        prop::sample::select(vec![0.05, 1e-4, 2.5e3, 1e16, 1e300, 5e-324, f64::MAX]),
    ]
}

fn expr_tree() -> impl Strategy<Value = Expr> {
    let span = Span::default();
    let leaf = prop_oneof![
        number().prop_map(move |value| Expr { kind: ExprKind::Number(value), span }),
        expr_name().prop_map(move |name| Expr { kind: ExprKind::Name(name), span }),
    ];
    leaf.prop_recursive(8, 64, 3, move |inner| {
        let op = prop::sample::select(vec![
            ast::BinOp::Add,
            ast::BinOp::Sub,
            ast::BinOp::Mul,
            ast::BinOp::Div,
            ast::BinOp::Pow,
            ast::BinOp::Lt,
            ast::BinOp::Le,
            ast::BinOp::Gt,
            ast::BinOp::Ge,
            ast::BinOp::Eq,
            ast::BinOp::Ne,
        ]);
        let arg = (prop::option::of(name()), inner.clone())
            .prop_map(move |(name, value)| ast::Arg { name: name.map(|name| Ident { name, span }), value });
        prop_oneof![
            4 => (op, inner.clone(), inner.clone()).prop_map(move |(op, lhs, rhs)| Expr {
                kind: ExprKind::Binary { op, lhs: Box::new(lhs), rhs: Box::new(rhs) },
                span,
            }),
            2 => inner.clone().prop_map(move |operand| Expr { kind: ExprKind::Neg(Box::new(operand)), span }),
            1 => (name(), prop::collection::vec(arg, 0..4)).prop_map(move |(callee, args)| Expr {
                kind: ExprKind::Call { callee: Ident { name: callee, span }, args },
                span,
            }),
            1 => prop::collection::vec(inner.clone(), 0..4)
                .prop_map(move |items| Expr { kind: ExprKind::List(items), span }),
            1 => (inner.clone(), inner.clone(), inner).prop_map(move |(cond, then, otherwise)| Expr {
                kind: ExprKind::If { cond: Box::new(cond), then: Box::new(then), otherwise: Box::new(otherwise) },
                span,
            }),
        ]
    })
}

/// Random files of every item kind, with random expressions.
fn file_tree() -> impl Strategy<Value = File> {
    let span = Span::default();
    let ident = move || name().prop_map(move |name| Ident { name, span });
    let modifier = prop::sample::select(vec!["standardize", "clip", "x", "fill(mean)", "fill(0, indicator)"]).prop_map(
        move |text| match text.split_once('(') {
            None => Expr { kind: ExprKind::Name(text.to_string()), span },
            Some((callee, rest)) => {
                let args = rest
                    .trim_end_matches(')')
                    .split(", ")
                    .map(|a| ast::Arg {
                        name: None,
                        value: match a.parse::<f64>() {
                            Ok(v) => Expr { kind: ExprKind::Number(v), span },
                            Err(_) => Expr { kind: ExprKind::Name(a.to_string()), span },
                        },
                    })
                    .collect();
                Expr { kind: ExprKind::Call { callee: Ident { name: callee.to_string(), span }, args }, span }
            }
        },
    );
    let decl = (
        any::<bool>(),
        ident(),
        prop::option::of(expr_tree()),
        prop::option::of(expr_tree()),
        prop::collection::vec(modifier, 0..3),
    )
        .prop_map(move |(input, name, width, source, modifiers)| ast::DataDecl {
            kind: if input { ast::DataKind::Input } else { ast::DataKind::Target },
            name,
            width,
            source,
            modifiers,
            span,
        });
    let assignments = move || prop::collection::vec((ident(), expr_tree()), 0..3);
    let item = prop_oneof![
        (prop::collection::vec(decl, 0..3), any::<bool>()).prop_map(move |(decls, drop)| {
            let settings = if drop {
                let name = Ident { name: "missing".into(), span };
                vec![ast::Setting { name, value: Expr { kind: ExprKind::Name("drop".into()), span }, span }]
            } else {
                Vec::new()
            };
            Item::Data(ast::DataBlock { decls, settings, span })
        }),
        assignments().prop_map(move |layers| {
            let layers = layers.into_iter().map(|(name, value)| ast::Binding { name, value, span }).collect();
            Item::Model(ast::ModelBlock { layers, span })
        }),
        (ident(), expr_tree()).prop_map(move |(name, init)| Item::Param(ast::ParamDecl { name, init, span })),
        (ident(), prop::collection::vec(ident(), 0..3), expr_tree())
            .prop_map(move |(name, params, body)| Item::Fn(ast::FnDecl { name, params, body, span })),
        expr_tree().prop_map(move |expr| Item::Loss(ast::LossDecl { expr, span })),
        assignments().prop_map(move |settings| {
            let settings = settings.into_iter().map(|(name, value)| ast::Setting { name, value, span }).collect();
            Item::Train(ast::TrainBlock { settings, span })
        }),
    ];
    prop::collection::vec(item, 0..5).prop_map(|items| File { items })
}

/// Text built from the language's tokens, plus a little that is not.
fn token_soup() -> impl Strategy<Value = String> {
    let token = prop::sample::select(vec![
        "data",
        "model",
        "param",
        "loss",
        "train",
        "input",
        "target",
        "x",
        "dense",
        "{",
        "}",
        "(",
        ")",
        "[",
        "]",
        ",",
        "=",
        "+",
        "-",
        "*",
        "/",
        "^",
        "1",
        "0.5",
        "1e-3",
        ".",
        " ",
        "\n",
        "# c\n",
        "é",
        "\u{1F600}",
        "@",
        "\t",
        "1e999",
        "fn",
        "if",
        "then",
        "else",
        "<",
        "<=",
        ">",
        "==",
        "!=",
        "h.w",
    ]);
    prop::collection::vec(token, 0..40).prop_map(|tokens| tokens.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// A random tree, printed and parsed, is the same tree.
    #[test]
    fn printed_expressions_parse_back(expr in expr_tree()) {
        let file = File {
            items: vec![Item::Loss(ast::LossDecl { expr, span: Span::default() })],
        };
        let text = print::source(&file);
        let reparsed = syntax::parse(&text).map_err(|diags| {
            TestCaseError::fail(render(&diags, "printed.nn", &text, Style::Plain))
        })?;
        prop_assert_eq!(without_spans(&reparsed), file);
        prop_assert_eq!(print::source(&reparsed), text);
    }

    /// A random file, printed and parsed, is the same file, with exact spans.
    #[test]
    fn printed_files_parse_back(file in file_tree()) {
        let text = print::source(&file);
        let reparsed = syntax::parse(&text).map_err(|diags| {
            TestCaseError::fail(render(&diags, "printed.nn", &text, Style::Plain))
        })?;
        prop_assert_eq!(without_spans(&reparsed), file);
        assert_spans_exact(&text, &reparsed);
        prop_assert_eq!(print::source(&reparsed), text);
    }

    /// Anything parses or fails cleanly: no panic, diagnostics inside the file,
    /// successful parses with exact spans that print back to the same tree.
    #[test]
    fn token_soup_never_panics(text in token_soup()) {
        match syntax::parse(&text) {
            Ok(file) => {
                assert_spans_exact(&text, &file);
                assert_round_trip(&file);
            }
            Err(diags) => assert_diag_spans_ok(&text, &diags),
        }
    }

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,60}") {
        if let Err(diags) = syntax::parse(&text) {
            assert_diag_spans_ok(&text, &diags);
        }
    }
}
