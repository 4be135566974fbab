//! Feeds arbitrary bytes to the Pusher frame decoder.
//!
//! The bytes are turned into text with `String::from_utf8_lossy` (a WebSocket text frame is always
//! valid UTF-8, and lossy conversion lets every input reach the decoder). Checks:
//! - `decode` never panics;
//! - `MessageTooLarge` is returned exactly when the text is over `MAX_CLIENT_MESSAGE` bytes;
//! - padding the text with trailing JSON whitespace up to exactly the limit changes nothing, and
//!   one byte more turns it into `MessageTooLarge` (libFuzzer's default `-max_len` is 4096, so
//!   this is how the 10 KB boundary is reached on every input);
//! - decoded frames keep the shape the connection relies on (`client-` events have a name after
//!   the prefix).

#![no_main]

use chatbox::protocol::{ClientFrame, MAX_CLIENT_MESSAGE, ProtocolError, decode};
use libfuzzer_sys::fuzz_target;

fn check(text: &str) -> Result<ClientFrame, ProtocolError> {
    let result = decode(text);
    let too_large = matches!(result, Err(ProtocolError::MessageTooLarge));
    assert_eq!(
        too_large,
        text.len() > MAX_CLIENT_MESSAGE,
        "MessageTooLarge must be returned exactly for frames over {MAX_CLIENT_MESSAGE} bytes \
         (len {}): {result:?}",
        text.len()
    );
    match &result {
        Ok(ClientFrame::ClientEvent { event, .. }) => {
            assert!(
                event.starts_with("client-") && event.len() > "client-".len(),
                "client event with a bad name: {event:?}"
            );
        }
        Ok(_) => {}
        Err(e) => assert!(
            matches!(e, ProtocolError::MessageTooLarge | ProtocolError::Malformed(_)),
            "decode returned an error it is not documented to return: {e:?}"
        ),
    }
    result
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let result = check(&text);

    if text.len() <= MAX_CLIENT_MESSAGE {
        let mut padded = String::with_capacity(MAX_CLIENT_MESSAGE + 1);
        padded.push_str(&text);
        padded.extend(std::iter::repeat_n(' ', MAX_CLIENT_MESSAGE - text.len()));
        let at_limit = check(&padded);
        match (&result, &at_limit) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "trailing whitespace changed the decoded frame"),
            (Err(_), Err(_)) => {}
            _ => panic!("trailing whitespace changed the outcome: {result:?} vs {at_limit:?}"),
        }
        padded.push(' ');
        assert_eq!(
            check(&padded),
            Err(ProtocolError::MessageTooLarge),
            "one byte over the limit must be refused"
        );
    }
});
