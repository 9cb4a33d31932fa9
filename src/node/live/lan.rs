//! The multicast sockets of LAN discovery: beacons out on every link of this
//! host, beacons in from any of them.
//!
//! Why per link: a multicast datagram leaves by one interface, the one the
//! routing table picks (often none, on a host without a default route). So a
//! beacon is sent once per up, multicast-capable, non-loopback interface,
//! with the sending socket bound to that interface, and the receiving socket
//! joins the group on each of them. Only link scope is used: IPv4 with TTL 1,
//! IPv6 to a link-local group with hop limit 1, so no router forwards a
//! beacon. The interfaces are read from `/sys/class/net` (Linux); each send
//! reads them again, so a link that comes up later is used from then on.

use std::collections::BTreeSet;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::num::NonZeroU32;

use socket2::{Domain, InterfaceIndexOrAddress, Protocol, SockAddr, Socket, Type};
use tokio::net::UdpSocket;

use crate::proto::discovery::{Beacon, BEACON_LEN, DISCOVERY_PORT, GROUP_V4, GROUP_V6};

/// `IFF_UP`, `IFF_LOOPBACK` and `IFF_MULTICAST` of `<linux/if.h>`.
const IFF_UP: u32 = 0x1;
const IFF_LOOPBACK: u32 = 0x8;
const IFF_MULTICAST: u32 = 0x1000;

/// The address families beacons are sent in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Families {
    pub v4: bool,
    pub v6: bool,
}

impl Families {
    /// The families in which a QUIC endpoint bound to `listen` can be
    /// reached: `[::]` takes both (Linux binds it dual-stack), `0.0.0.0` or
    /// an IPv4 address only IPv4, an IPv6 address only IPv6.
    pub(super) fn reaching(listen: SocketAddr) -> Families {
        match listen.ip() {
            IpAddr::V6(ip) if ip.is_unspecified() => Families { v4: true, v6: true },
            IpAddr::V6(_) => Families {
                v4: false,
                v6: true,
            },
            IpAddr::V4(_) => Families {
                v4: true,
                v6: false,
            },
        }
    }
}

/// The beacon sockets of one node: receivers in both families (a peer may
/// announce in either), senders made per send.
pub(super) struct Lan {
    v4: Option<UdpSocket>,
    v6: Option<UdpSocket>,
    /// Interfaces whose groups the receivers joined.
    joined: BTreeSet<u32>,
}

impl Lan {
    /// Binds the receivers on the discovery port (shared with other nodes of
    /// this host) and joins the groups on every link. Fails only if neither
    /// family can be had.
    pub(super) fn open() -> io::Result<Lan> {
        let v4 = receiver(Domain::IPV4);
        let v6 = receiver(Domain::IPV6);
        if let (Err(e), Err(_)) = (&v4, &v6) {
            return Err(io::Error::new(e.kind(), e.to_string()));
        }
        for (family, result) in [("IPv4", &v4), ("IPv6", &v6)] {
            if let Err(e) = result {
                tracing::debug!("discovery: no {family} receiver: {e}");
            }
        }
        let mut lan = Lan {
            v4: v4.ok(),
            v6: v6.ok(),
            joined: BTreeSet::new(),
        };
        lan.join_links()?;
        Ok(lan)
    }

    /// Joins the groups on links that came up since the last call; returns
    /// the links there are now.
    fn join_links(&mut self) -> io::Result<Vec<u32>> {
        let links = links()?;
        for &index in &links {
            if !self.joined.insert(index) {
                continue;
            }
            if let Some(socket) = &self.v4 {
                let socket = socket2::SockRef::from(socket);
                if let Err(e) =
                    socket.join_multicast_v4_n(&GROUP_V4, &InterfaceIndexOrAddress::Index(index))
                {
                    tracing::debug!("discovery: cannot join {GROUP_V4} on link {index}: {e}");
                }
            }
            if let Some(socket) = &self.v6 {
                let socket = socket2::SockRef::from(socket);
                if let Err(e) = socket.join_multicast_v6(&GROUP_V6, index) {
                    tracing::debug!("discovery: cannot join {GROUP_V6} on link {index}: {e}");
                }
            }
        }
        Ok(links)
    }

    /// Sends `beacon` on every link in `families`, from `source` (the QUIC
    /// endpoint's own address when it is bound to one, so that receivers
    /// see the address to dial). Returns the bytes sent (UDP payload).
    pub(super) fn send(&mut self, beacon: &Beacon, families: Families, source: IpAddr) -> usize {
        let links = match self.join_links() {
            Ok(links) => links,
            Err(e) => {
                tracing::warn!("discovery: cannot list this host's network links: {e}");
                return 0;
            }
        };
        let bytes = beacon.encode();
        let mut sent = 0;
        for index in links {
            for (wanted, group) in [
                (
                    families.v4,
                    SocketAddr::new(GROUP_V4.into(), DISCOVERY_PORT),
                ),
                (
                    families.v6,
                    SocketAddr::new(GROUP_V6.into(), DISCOVERY_PORT),
                ),
            ] {
                if !wanted {
                    continue;
                }
                match send_on(index, group, source, &bytes) {
                    Ok(()) => sent += bytes.len(),
                    Err(e) => {
                        tracing::debug!("discovery: cannot send to {group} on link {index}: {e}")
                    }
                }
            }
        }
        sent
    }

    /// The next beacon from either family, with the address it came from;
    /// datagrams that are not beacons are skipped.
    pub(super) async fn recv(&self) -> io::Result<(Beacon, SocketAddr)> {
        loop {
            let (bytes, len, from) = tokio::select! {
                got = recv_from(self.v4.as_ref()) => got?,
                got = recv_from(self.v6.as_ref()) => got?,
            };
            match Beacon::decode(&bytes[..len]) {
                Ok(beacon) => return Ok((beacon, from)),
                Err(e) => tracing::trace!("discovery: {from} sent no beacon: {e}"),
            }
        }
    }
}

/// One datagram from `socket` (pending forever without one); at most one
/// byte more than a beacon is read, so a longer datagram fails the decoder.
async fn recv_from(
    socket: Option<&UdpSocket>,
) -> io::Result<([u8; BEACON_LEN + 1], usize, SocketAddr)> {
    let Some(socket) = socket else {
        return std::future::pending().await;
    };
    let mut buf = [0u8; BEACON_LEN + 1];
    let (len, from) = socket.recv_from(&mut buf).await?;
    Ok((buf, len, from))
}

/// A socket on the discovery port of `domain`'s wildcard address, shared
/// with the other nodes of this host (`SO_REUSEADDR`: each gets every
/// beacon), receiving only the groups it joined itself.
fn receiver(domain: Domain) -> io::Result<UdpSocket> {
    let socket = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_address(true)?;
    let wildcard: IpAddr = if domain == Domain::IPV6 {
        socket.set_only_v6(true)?;
        socket.set_multicast_all_v6(false)?;
        Ipv6Addr::UNSPECIFIED.into()
    } else {
        socket.set_multicast_all_v4(false)?;
        Ipv4Addr::UNSPECIFIED.into()
    };
    socket.bind(&SockAddr::from(SocketAddr::new(wildcard, DISCOVERY_PORT)))?;
    socket.set_nonblocking(true)?;
    UdpSocket::from_std(socket.into())
}

/// Sends one datagram to `group` out of the link `index` only, with link
/// scope, looped back to this host's own receivers (other nodes here).
fn send_on(index: u32, group: SocketAddr, source: IpAddr, bytes: &[u8]) -> io::Result<()> {
    let link = NonZeroU32::new(index);
    let (domain, from): (Domain, IpAddr) = match (group, source) {
        (SocketAddr::V4(_), IpAddr::V4(ip)) => (Domain::IPV4, ip.into()),
        (SocketAddr::V4(_), IpAddr::V6(_)) => (Domain::IPV4, Ipv4Addr::UNSPECIFIED.into()),
        (SocketAddr::V6(_), IpAddr::V6(ip)) => (Domain::IPV6, ip.into()),
        (SocketAddr::V6(_), IpAddr::V4(_)) => (Domain::IPV6, Ipv6Addr::UNSPECIFIED.into()),
    };
    let socket = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
    if domain == Domain::IPV6 {
        socket.set_only_v6(true)?;
        socket.set_multicast_if_v6(index)?;
        socket.set_multicast_hops_v6(1)?;
        socket.set_multicast_loop_v6(true)?;
    } else {
        socket.bind_device_by_index_v4(link)?;
        socket.set_multicast_ttl_v4(1)?;
        socket.set_multicast_loop_v4(true)?;
    }
    socket.bind(&SockAddr::from(SocketAddr::new(from, 0)))?;
    socket.set_nonblocking(true)?;
    socket.send_to(bytes, &SockAddr::from(group))?;
    Ok(())
}

/// The indexes of this host's links that are up, take multicast and are not
/// loopback.
fn links() -> io::Result<Vec<u32>> {
    let mut out = Vec::new();
    for dir in std::fs::read_dir("/sys/class/net")? {
        let path = dir?.path();
        let read = |name: &str| std::fs::read_to_string(path.join(name));
        let (Ok(flags), Ok(index)) = (read("flags"), read("ifindex")) else {
            continue;
        };
        let flags = u32::from_str_radix(flags.trim().trim_start_matches("0x"), 16).unwrap_or(0);
        let Ok(index) = index.trim().parse::<u32>() else {
            continue;
        };
        if flags & IFF_UP != 0 && flags & IFF_MULTICAST != 0 && flags & IFF_LOOPBACK == 0 {
            out.push(index);
        }
    }
    out.sort_unstable();
    Ok(out)
}
