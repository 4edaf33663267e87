//! Choosing a TCP port for a new local instance.

use std::collections::HashSet;
use std::net::{Ipv4Addr, TcpListener};
use std::ops::RangeInclusive;

/// The first port in `range` that no instance has claimed and that is free on 127.0.0.1 now.
pub fn pick_free_port(range: &RangeInclusive<u16>, claimed: &HashSet<u16>) -> Option<u16> {
    range
        .clone()
        .filter(|port| !claimed.contains(port))
        .find(|port| TcpListener::bind((Ipv4Addr::LOCALHOST, *port)).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_claimed_and_busy_ports() -> std::io::Result<()> {
        let busy = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        let busy_port = busy.local_addr()?.port();
        let range = busy_port..=busy_port.saturating_add(2);
        let claimed: HashSet<u16> = [busy_port.saturating_add(1)].into();
        let picked = pick_free_port(&range, &claimed);
        assert!(picked.is_none() || picked == Some(busy_port.saturating_add(2)));
        assert_eq!(
            pick_free_port(&(busy_port..=busy_port), &HashSet::new()),
            None
        );
        Ok(())
    }
}
