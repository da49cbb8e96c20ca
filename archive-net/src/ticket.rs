//! Tickets: a server's endpoint id and addresses in one copyable string.
//!
//! Format (version 1): `archive1` followed by lowercase unpadded base32 of
//! `id (32 bytes) || count (1 byte) || count × (family (1 byte: 4 or 6) || ip || port (u16 BE))`.
//! The prefix names the version; a future format gets a new prefix.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

use data_encoding::BASE32_NOPAD;
use iroh::{EndpointAddr, EndpointId};

const PREFIX: &str = "archive1";
/// Most addresses in a ticket.
pub const MAX_TICKET_ADDRS: usize = 16;

/// A server's endpoint id and the addresses it listens on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    /// The endpoint id (public key).
    pub id: EndpointId,
    /// Direct addresses.
    pub addrs: Vec<SocketAddr>,
}

/// A ticket that does not parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("not a valid ticket: {0}")]
pub struct TicketError(String);

impl Ticket {
    /// The address to dial.
    pub fn endpoint_addr(&self) -> EndpointAddr {
        let mut addr = EndpointAddr::new(self.id);
        for a in &self.addrs {
            addr = addr.with_ip_addr(*a);
        }
        addr
    }

    fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.id.as_bytes().to_vec();
        let addrs = &self.addrs[..self.addrs.len().min(MAX_TICKET_ADDRS)];
        out.push(addrs.len() as u8);
        for a in addrs {
            match a.ip() {
                IpAddr::V4(ip) => {
                    out.push(4);
                    out.extend_from_slice(&ip.octets());
                }
                IpAddr::V6(ip) => {
                    out.push(6);
                    out.extend_from_slice(&ip.octets());
                }
            }
            out.extend_from_slice(&a.port().to_be_bytes());
        }
        out
    }

    fn from_bytes(b: &[u8]) -> Result<Self, TicketError> {
        let err = |m: &str| TicketError(m.to_owned());
        if b.len() < 33 {
            return Err(err("too short"));
        }
        let id: [u8; 32] = b[..32].try_into().expect("32 bytes");
        let id = EndpointId::from_bytes(&id).map_err(|_| err("the id is not a valid key"))?;
        let count = b[32] as usize;
        if count > MAX_TICKET_ADDRS {
            return Err(err("too many addresses"));
        }
        let mut rest = &b[33..];
        let mut addrs = Vec::with_capacity(count);
        for _ in 0..count {
            let (ip, len) = match rest.first() {
                Some(4) if rest.len() >= 7 => {
                    let o: [u8; 4] = rest[1..5].try_into().expect("4 bytes");
                    (IpAddr::V4(Ipv4Addr::from(o)), 5)
                }
                Some(6) if rest.len() >= 19 => {
                    let o: [u8; 16] = rest[1..17].try_into().expect("16 bytes");
                    (IpAddr::V6(Ipv6Addr::from(o)), 17)
                }
                _ => return Err(err("a truncated or unknown address")),
            };
            let port = u16::from_be_bytes([rest[len], rest[len + 1]]);
            addrs.push(SocketAddr::new(ip, port));
            rest = &rest[len + 2..];
        }
        if !rest.is_empty() {
            return Err(err("stray bytes at the end"));
        }
        Ok(Ticket { id, addrs })
    }
}

impl fmt::Display for Ticket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let body = BASE32_NOPAD.encode(&self.to_bytes()).to_ascii_lowercase();
        write!(f, "{PREFIX}{body}")
    }
}

impl FromStr for Ticket {
    type Err = TicketError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.len() > 1024 {
            return Err(TicketError("longer than any ticket".into()));
        }
        let Some(body) = s.strip_prefix(PREFIX) else {
            return Err(TicketError(format!("it does not start with `{PREFIX}`")));
        };
        let bytes = BASE32_NOPAD
            .decode(body.to_ascii_uppercase().as_bytes())
            .map_err(|e| TicketError(format!("bad base32: {e}")))?;
        Ticket::from_bytes(&bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_errors() {
        let id = iroh::SecretKey::from_bytes(&[5; 32]).public();
        let t = Ticket {
            id,
            addrs: vec![
                "127.0.0.1:7740".parse().unwrap(),
                "[fe80::1]:9".parse().unwrap(),
            ],
        };
        let s = t.to_string();
        assert!(s.starts_with("archive1"));
        assert_eq!(s.parse::<Ticket>().unwrap(), t);
        assert_eq!(format!("  {s}\n").parse::<Ticket>().unwrap(), t);
        assert!("archive2abc".parse::<Ticket>().is_err());
        assert!(s[..s.len() - 3].parse::<Ticket>().is_err());
        assert!(format!("{s}aa").parse::<Ticket>().is_err());
        assert!("archive1!!!!".parse::<Ticket>().is_err());
        let none = Ticket { id, addrs: vec![] };
        assert_eq!(none.to_string().parse::<Ticket>().unwrap(), none);
    }
}
