//! Listeners that can go down and come back on the same port without another process taking
//! the port in between.
//!
//! Tests run as many processes at once, each binding ephemeral ports. A sink that simply closed
//! its listener during a simulated outage left its port free: another test could bind it (or
//! the sender could connect to itself), and the message the outage test waited for was then
//! delivered somewhere else. So every listener here is opened with `SO_REUSEPORT`, and while it
//! is down a bound but non-listening socket holds the port: connections are still refused, as
//! from a stopped server, but nobody else gets the port.

use std::net::SocketAddr;
use tokio::net::{TcpListener, TcpSocket};

fn reusable(addr: SocketAddr) -> std::io::Result<TcpSocket> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(true)?;
    socket.bind(addr)?;
    Ok(socket)
}

/// Listens on `addr` (port 0 for a fresh one) in a way [`PortHold`] can share.
pub fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    reusable(addr)?.listen(1024)
}

/// Keeps a port bound, but not listening, while its server is down.
pub struct PortHold {
    _socket: TcpSocket,
}

impl PortHold {
    /// Take this before the listener on `addr` closes, and drop it after the new one listens.
    pub fn take(addr: SocketAddr) -> std::io::Result<Self> {
        reusable(addr).map(|socket| Self { _socket: socket })
    }
}
