//! Time on the wire: `google.protobuf.Timestamp` (UTC) to and from the integer clocks the
//! services store (nanoseconds or microseconds since the Unix epoch).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Nanoseconds since the Unix epoch, now (0 if the clock is before 1970).
pub fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

pub fn timestamp_from_ns(ns: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: ns.div_euclid(1_000_000_000),
        nanos: ns.rem_euclid(1_000_000_000) as i32,
    }
}

pub fn timestamp_from_micros(micros: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: micros.div_euclid(1_000_000),
        nanos: (micros.rem_euclid(1_000_000) * 1_000) as i32,
    }
}

/// `ttl` from now.
pub fn timestamp_in(ttl: Duration) -> prost_types::Timestamp {
    timestamp_from_ns(now_ns().saturating_add(ttl.as_nanos().min(i64::MAX as u128) as i64))
}

/// Nanoseconds of a wire timestamp, if it is within 1970 … 2255 (i64 nanoseconds) with
/// nanos in 0..1e9.
pub fn ns_from_timestamp(t: &prost_types::Timestamp) -> Result<i64, &'static str> {
    if !(0..=9_000_000_000).contains(&t.seconds) || !(0..1_000_000_000).contains(&t.nanos) {
        return Err("must be between 1970 and 2255 with nanos in 0..1e9");
    }
    Ok(t.seconds * 1_000_000_000 + i64::from(t.nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_convert_both_ways() {
        let t = timestamp_from_ns(1_700_000_000_123_456_789);
        assert_eq!((t.seconds, t.nanos), (1_700_000_000, 123_456_789));
        assert_eq!(ns_from_timestamp(&t), Ok(1_700_000_000_123_456_789));
        let t = timestamp_from_micros(-1);
        assert_eq!((t.seconds, t.nanos), (-1, 999_999_000));
        assert!(
            ns_from_timestamp(&prost_types::Timestamp {
                seconds: -1,
                nanos: 0
            })
            .is_err()
        );
        assert!(
            ns_from_timestamp(&prost_types::Timestamp {
                seconds: 1,
                nanos: -1
            })
            .is_err()
        );
        assert!(
            timestamp_in(Duration::from_secs(60)).seconds > timestamp_from_ns(now_ns()).seconds
        );
    }
}
