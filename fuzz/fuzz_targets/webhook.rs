//! Mender's webhooks: the signature check and the envelope parser, on any
//! bytes. Neither may panic; a signature made for a body verifies for that
//! body and key only; a published event always names its id and device.
#![no_main]

use bridge::webhook::{Classification, WebhookError, parse, sign, verify_signature};
use libfuzzer_sys::fuzz_target;

const SECRET: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
const OTHER: &str = "ff112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

fuzz_target!(|data: &[u8]| {
    // The signature header as sent: whatever the first line holds.
    let (header, body) = match data.iter().position(|b| *b == b'\n') {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (&[][..], data),
    };
    let header = String::from_utf8_lossy(header);
    let _ = verify_signature(SECRET, body, Some(&header));
    let _ = verify_signature(&header, body, Some(&header));

    let signature = sign(SECRET, body);
    assert_eq!(verify_signature(SECRET, body, Some(&signature)), Ok(()));
    assert_eq!(
        verify_signature(OTHER, body, Some(&signature)),
        Err(WebhookError::BadSignature)
    );
    if header != signature && !header.trim().eq_ignore_ascii_case(&signature) {
        assert!(verify_signature(SECRET, body, Some(&header)).is_err());
    }

    for input in [data, body] {
        if let Ok((event, classification)) = parse(input) {
            assert!(!event.id.is_empty());
            assert!(!event.event_type.is_empty());
            if let Classification::Publish(_) = classification {
                assert!(!event.device_id.is_empty());
            }
        }
    }
});
