//! 128-bit ids chosen by clients (TigerBeetle-style). On the wire: 16 bytes, big-endian.
//! In PostgreSQL: `uuid` (16 bytes, ordered like the integer).

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("id must be exactly 16 bytes, got {0}")]
    Length(usize),
    #[error("id must not be zero")]
    Zero,
    #[error("id must be 32 hex digits")]
    Hex,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Id128(u128);

impl Id128 {
    /// Parses 16 wire bytes; zero is rejected (it means "unset" in proto3).
    pub fn from_bytes(bytes: &[u8]) -> Result<Id128, IdError> {
        let arr: [u8; 16] = bytes.try_into().map_err(|_| IdError::Length(bytes.len()))?;
        Id128::new(u128::from_be_bytes(arr))
    }

    pub fn new(value: u128) -> Result<Id128, IdError> {
        if value == 0 {
            return Err(IdError::Zero);
        }
        Ok(Id128(value))
    }

    /// Parses 32 hex digits (dashes allowed, as in a UUID).
    pub fn parse_hex(s: &str) -> Result<Id128, IdError> {
        let hex: String = s.chars().filter(|c| *c != '-').collect();
        if hex.len() != 32 {
            return Err(IdError::Hex);
        }
        let value = u128::from_str_radix(&hex, 16).map_err(|_| IdError::Hex)?;
        Id128::new(value)
    }

    /// A random id (v4 UUID bits), for tools and tests.
    pub fn random() -> Id128 {
        // A v4 UUID is never all zero: its version nibble is 4.
        Id128(uuid::Uuid::new_v4().as_u128())
    }

    /// A time-ordered id, ULID-like: the high 64 bits are nanoseconds since the Unix epoch, the
    /// low 64 random. Ids made later sort later, so a table's primary key takes inserts at its
    /// right edge instead of on random pages (the ledger is correct with any ids; this is
    /// what clients should choose for speed).
    pub fn time_ordered() -> Id128 {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let random = uuid::Uuid::new_v4().as_u128() as u64 | 1;
        Id128((u128::from(nanos) << 64) | u128::from(random))
    }

    pub fn get(self) -> u128 {
        self.0
    }

    pub fn to_bytes(self) -> [u8; 16] {
        self.0.to_be_bytes()
    }

    pub fn to_uuid(self) -> uuid::Uuid {
        uuid::Uuid::from_u128(self.0)
    }

    pub fn from_uuid(u: uuid::Uuid) -> Result<Id128, IdError> {
        Id128::new(u.as_u128())
    }
}

impl fmt::Display for Id128 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl fmt::Debug for Id128 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Id128({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_ordered_ids_sort_by_time() {
        let a = Id128::time_ordered();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = Id128::time_ordered();
        assert!(a < b);
        assert!(
            a.to_bytes() < b.to_bytes(),
            "byte order (PostgreSQL's uuid order) agrees"
        );
    }

    #[test]
    fn wire_bytes_round_trip_and_zero_is_rejected() {
        let id = Id128::new(0x0102_0304_0506_0708_090a_0b0c_0d0e_0f10).unwrap();
        assert_eq!(Id128::from_bytes(&id.to_bytes()), Ok(id));
        assert_eq!(Id128::from_bytes(&[0; 16]), Err(IdError::Zero));
        assert_eq!(Id128::from_bytes(&[1; 15]), Err(IdError::Length(15)));
        assert_eq!(Id128::parse_hex(&id.to_string()), Ok(id));
        assert_eq!(Id128::from_uuid(id.to_uuid()), Ok(id));
    }
}
