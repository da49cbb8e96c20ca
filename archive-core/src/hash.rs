//! The 32-byte names: [`Hash`] (BLAKE3 of content), and the macro that also makes
//! [`EntryId`](crate::EntryId) and [`PeerId`](crate::PeerId) distinct types with the same
//! hex, serde and byte conversions.

/// Defines a 32-byte id newtype: raw-byte conversions, lowercase hex (`Display`, `FromStr`,
/// `to_hex`), a `Debug` that names the type, and serde as a plain `[u8; 32]` (so wire formats
/// that carried raw arrays keep their bytes).
macro_rules! id_type {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
        pub struct $name([u8; 32]);

        impl $name {
            /// Wraps 32 raw bytes.
            pub const fn from_bytes(bytes: [u8; 32]) -> Self {
                $name(bytes)
            }

            /// The raw 32 bytes.
            pub const fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }

            /// Lowercase hex, 64 characters.
            pub fn to_hex(&self) -> String {
                blake3::Hash::from_bytes(self.0).to_hex().to_string()
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(&blake3::Hash::from_bytes(self.0).to_hex())
            }
        }

        impl ::std::fmt::Debug for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self)
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::hash::ParseIdError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $crate::hash::parse_hex(s, stringify!($name)).map($name)
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                self.0.serialize(s)
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                <[u8; 32]>::deserialize(d).map($name)
            }
        }
    };
}
pub(crate) use id_type;

id_type!(
    /// A BLAKE3 hash of content: the name of a blob (its hex equals what `b3sum` prints).
    Hash
);

impl Hash {
    /// The hash of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Hash(*blake3::hash(bytes).as_bytes())
    }
}

impl From<blake3::Hash> for Hash {
    fn from(h: blake3::Hash) -> Self {
        Hash(*h.as_bytes())
    }
}

/// A string that is not 64 hex digits, where an id or a hash was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{input}` is not {what} (64 hex digits)")]
pub struct ParseIdError {
    input: String,
    what: &'static str,
}

/// What a parse error calls each id type.
fn describe(type_name: &'static str) -> &'static str {
    match type_name {
        "Hash" => "a BLAKE3 hash",
        "EntryId" => "an entry id",
        "PeerId" => "a peer id",
        _ => "an id",
    }
}

pub(crate) fn parse_hex(s: &str, type_name: &'static str) -> Result<[u8; 32], ParseIdError> {
    // blake3's parser takes exactly 64 hex digits of either case.
    blake3::Hash::from_hex(s)
        .map(|h| *h.as_bytes())
        .map_err(|_| ParseIdError {
            input: s.chars().take(80).collect(),
            what: describe(type_name),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_matches_b3sum_of_empty_input() {
        // `b3sum /dev/null`
        assert_eq!(
            Hash::of(b"").to_hex(),
            "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
        );
        assert_eq!(Hash::of(b"").to_string(), Hash::of(b"").to_hex());
    }

    #[test]
    fn parse_round_trips_and_rejects_garbage() {
        let h = Hash::of(b"abc");
        assert_eq!(h.to_hex().parse::<Hash>().unwrap(), h);
        assert_eq!(h.to_hex().to_uppercase().parse::<Hash>().unwrap(), h);
        assert!("xyz".parse::<Hash>().is_err());
        assert!("g".repeat(64).parse::<Hash>().is_err());
        assert!(format!("{h}0").parse::<Hash>().is_err());
        let err = "nothex".parse::<Hash>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "`nothex` is not a BLAKE3 hash (64 hex digits)"
        );
        let err = "nothex".parse::<crate::EntryId>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "`nothex` is not an entry id (64 hex digits)"
        );
    }

    #[test]
    fn serde_bytes_are_the_raw_array() {
        // The network wire carried `[u8; 32]` before these types existed: same bytes.
        let h = Hash::of(b"abc");
        assert_eq!(
            postcard::to_stdvec(&h).unwrap(),
            postcard::to_stdvec(h.as_bytes()).unwrap()
        );
        assert_eq!(postcard::to_stdvec(&h).unwrap().len(), 32);
        let back: Hash = postcard::from_bytes(&postcard::to_stdvec(&h).unwrap()).unwrap();
        assert_eq!(back, h);
    }
}
