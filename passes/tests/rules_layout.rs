//! The target-independent layout rules: conversions pushed through elementwise ops
//! (`layout/elementwise-through`) and cancelled (`layout/cancel`) only where the channel
//! padding is provably zero. Every result is compared with the original on its stored values,
//! padding included. (The targets' convolution rules are tested with their cost models in
//! testsuite/tests/layout.rs.)

mod common;
use common::rule_check::{fired, kinds, run};

/// Three channels padded to eight in NHWC, through an elementwise op and back.
const ROUND_TRIP: &str = r#"graph "g" (%x: f32[1,3,4,4]) {
  %s = ToFormat[s](%x) {format=nhwc, align=8} : f32[1,4,4,8]
  %l = FromFormat[l](%s) {format=nhwc, align=8, channels=3} : f32[1,3,4,4]
  %r = Relu[r](%l) : f32[1,3,4,4]
  %y = ToFormat[y](%r) {format=nhwc, align=8} : f32[1,4,4,8]
  return %y
}
"#;

#[test]
fn a_conversion_pair_around_a_zero_keeping_op_cancels() {
    let (opt, rep) = run(ROUND_TRIP);
    assert!(fired(&rep, "layout/elementwise-through") > 0);
    assert!(fired(&rep, "layout/cancel") > 0);
    assert_eq!(sorted(kinds(&opt)), ["Relu", "ToFormat"]);
}

fn sorted(mut v: Vec<&'static str>) -> Vec<&'static str> {
    v.sort();
    v
}

#[test]
fn an_op_that_fills_the_padding_is_computed_before_converting() {
    // Sigmoid(0) = 0.5: on stored values the padding would become 0.5, so Sigmoid runs on the
    // logical values and one conversion follows (the comparison covers the padding).
    let (opt, _) = run(&ROUND_TRIP.replace("Relu[r]", "Sigmoid[r]"));
    assert_eq!(sorted(kinds(&opt)), ["Sigmoid", "ToFormat"]);
}

#[test]
fn a_stored_input_is_not_assumed_to_have_zero_padding() {
    // %s comes from outside with whatever its padding holds: converting back and forth zeroes
    // the padding, so the pair must stay.
    let src = r#"graph "g" (%s: f32[1,4,4,8]) {
  %l = FromFormat[l](%s) {format=nhwc, align=8, channels=3} : f32[1,3,4,4]
  %r = Relu[r](%l) : f32[1,3,4,4]
  %y = ToFormat[y](%r) {format=nhwc, align=8} : f32[1,4,4,8]
  return %y
}
"#;
    let (opt, rep) = run(src);
    assert_eq!(fired(&rep, "layout/cancel"), 0);
    assert!(kinds(&opt).contains(&"FromFormat"));
}

#[test]
fn without_padding_any_elementwise_op_goes_through() {
    // Eight channels in NC1HWC0 with C0 = 8: no padding, so Sigmoid is no obstacle.
    let src = r#"graph "g" (%x: f32[1,8,2,2]) {
  %s = ToFormat[s](%x) {format=nc1hwc0, align=8} : f32[1,1,2,2,8]
  %l = FromFormat[l](%s) {format=nc1hwc0, align=8, channels=8} : f32[1,8,2,2]
  %r = Sigmoid[r](%l) : f32[1,8,2,2]
  %y = ToFormat[y](%r) {format=nc1hwc0, align=8} : f32[1,1,2,2,8]
  return %y
}
"#;
    let (opt, rep) = run(src);
    assert!(fired(&rep, "layout/cancel") > 0);
    assert_eq!(sorted(kinds(&opt)), ["Sigmoid", "ToFormat"]);
}

#[test]
fn a_broadcasting_operand_keeps_the_op_in_nchw() {
    // A per-channel [3,1,1] operand has no stored form of the value's shape.
    let src = r#"graph "g" (%x: f32[1,3,4,4], %b: f32[3,1,1]) {
  %s = ToFormat[s](%x) {format=nhwc, align=8} : f32[1,4,4,8]
  %l = FromFormat[l](%s) {format=nhwc, align=8, channels=3} : f32[1,3,4,4]
  %r = Add[r](%l, %b) : f32[1,3,4,4]
  return %r
}
"#;
    let (_, rep) = run(src);
    assert_eq!(fired(&rep, "layout/elementwise-through"), 0);
}

#[test]
fn converting_there_and_back_is_nothing() {
    let src = r#"graph "g" (%x: f32[1,3,4,4]) {
  %s = ToFormat[s](%x) {format=nc1hwc0, align=16} : f32[1,1,4,4,16]
  %l = FromFormat[l](%s) {format=nc1hwc0, align=16, channels=3} : f32[1,3,4,4]
  %r = Exp[r](%l) : f32[1,3,4,4]
  return %r
}
"#;
    let (opt, rep) = run(src);
    assert!(fired(&rep, "layout/cancel") > 0);
    assert_eq!(kinds(&opt), ["Exp"]);
}
