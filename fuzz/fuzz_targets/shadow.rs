//! The shadow document rules on any bytes: a change request is parsed or
//! refused (never a panic, never deeper than AWS allows), and the patch sent
//! for a replacement or a merge turns the current desired state into the
//! requested one under AWS's merge rules.
#![no_main]

use bridge::shadow::{
    Change, MAX_SECTION_DEPTH, Precondition, Section, difference, merge, parse_change_request,
    parse_stored, section_depth, target_desired,
};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fn null_free(value: &Value) -> bool {
    match value {
        Value::Object(fields) => fields.values().all(|v| !v.is_null() && null_free(v)),
        _ => true,
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(desired) = parse_change_request(data) {
        assert!(section_depth(&desired) <= MAX_SECTION_DEPTH);
    }
    let _ = parse_stored(data);
    let _ = Precondition::parse(&String::from_utf8_lossy(data)).matches(1);

    // Two sections separated by a 0xff byte: the current desired state and
    // the requested one.
    let Some(at) = data.iter().position(|b| *b == 0xff) else {
        return;
    };
    let (Ok(current), Ok(requested)) = (
        serde_json::from_slice::<Section>(&data[..at]),
        serde_json::from_slice::<Section>(&data[at + 1..]),
    ) else {
        return;
    };
    let target = target_desired(Change::Replace, &current, &requested);
    assert!(null_free(&Value::Object(target.clone())));
    assert_eq!(merge(&current, &difference(&current, &target)), target);
    if null_free(&Value::Object(current.clone())) {
        let merged = target_desired(Change::Merge, &current, &requested);
        assert_eq!(merge(&current, &difference(&current, &merged)), merged);
    }
});
