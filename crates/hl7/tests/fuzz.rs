//! Outside input never panics the monitors' door: arbitrary text and mutated messages are read or
//! refused; arbitrary bytes split arbitrarily are framed the same as in one read.

use bytes::BytesMut;
use ketaflow_hl7::mllp::Mllp;
use ketaflow_hl7::parse;
use proptest::prelude::*;
use time::{OffsetDateTime, PrimitiveDateTime};
use tokio_util::codec::Decoder;

fn utc(t: PrimitiveDateTime) -> Option<OffsetDateTime> {
    Some(t.assume_utc())
}

const MESSAGE: &str = "MSH|^~\\&|GW^0012A3FFFE45B6C7^EUI-64||||20261207143000+0000||ORU^R01^ORU_R01|M1|P|2.6\rOBR|1||||||20261207142955+0000\rOBX|1|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1.3.1.2|97|262688^MDC_DIM_PERCENT^MDC|||||R|||20261207142955+0000|||||0012A3FFFE45B6C7^EUI-64\r";

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn any_text_is_read_or_refused(text in "\\PC{0,400}") {
        let _ = parse(&text, &utc);
    }

    #[test]
    fn a_mutated_message_is_read_or_refused(at in 0usize..MESSAGE.len(), cut in 0usize..40, insert in "[|^~\\\\&\\r0-9A-Z+.-]{0,12}") {
        let mut text = MESSAGE.to_string();
        let at = (0..=at).rev().find(|i| text.is_char_boundary(*i)).unwrap_or(0);
        let end = (at + cut).min(text.len());
        let end = (end..=text.len()).find(|i| text.is_char_boundary(*i)).unwrap_or(text.len());
        text.replace_range(at..end, &insert);
        let _ = parse(&text, &utc);
    }

    #[test]
    fn frames_do_not_depend_on_how_bytes_arrive(bytes in proptest::collection::vec(any::<u8>(), 0..600), splits in proptest::collection::vec(1usize..50, 0..20)) {
        let all = |chunks: Vec<&[u8]>| {
            let mut codec = Mllp::with_max(256);
            let mut buffer = BytesMut::new();
            let mut out = Vec::new();
            for chunk in chunks {
                buffer.extend_from_slice(chunk);
                loop {
                    match codec.decode(&mut buffer) {
                        Ok(Some(frame)) => out.push(Ok(frame.to_vec())),
                        Ok(None) => break,
                        Err(_) => out.push(Err(())),
                    }
                }
            }
            out
        };
        let whole = all(vec![&bytes[..]]);
        let mut chunks = Vec::new();
        let mut rest = &bytes[..];
        for s in splits {
            let n = s.min(rest.len());
            let (head, tail) = rest.split_at(n);
            chunks.push(head);
            rest = tail;
        }
        chunks.push(rest);
        let pieces = all(chunks);
        // A too-long frame may be noticed at a different point when bytes come in pieces; every
        // frame that completes within the limit is the same.
        let ok = |v: &Vec<Result<Vec<u8>, ()>>| v.iter().filter_map(|r| r.clone().ok()).collect::<Vec<_>>();
        if !whole.iter().any(Result::is_err) && !pieces.iter().any(Result::is_err) {
            prop_assert_eq!(ok(&whole), ok(&pieces));
        }
    }
}
