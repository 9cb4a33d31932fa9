//! Private network namespaces joined by a bridge: the only network on which
//! a test may multicast (LAN discovery). Included with `#[path]` next to
//! `cli.rs`, by tests/discovery.rs.
//!
//! Each host is a namespace with one veth link (`eth0`) to a bridge in a hub
//! namespace; nothing is connected to the host's own interfaces. Names carry
//! the test process id and a tag, so parallel tests and runs do not collide;
//! a leftover of the same name is removed first, and everything is removed
//! on drop.

#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

use assert_cmd::cargo::cargo_bin;

use crate::cli::{Serving, OFF_ENV};

/// Some namespaces, removed on drop.
pub struct Lan {
    prefix: String,
    names: Vec<String>,
}

impl Lan {
    /// A namespace per `(host, "address/prefix")`, each linked to one
    /// bridge. `None` (the reason printed) where this machine cannot make
    /// them: not root, no `ip` (iproute2); under CI (`CI` set), which runs
    /// as root with iproute2 installed, that is a failure instead.
    pub fn new(tag: &str, hosts: &[(&str, &str)]) -> Option<Lan> {
        let cannot = if !rustix::process::geteuid().is_root() {
            Some("network namespaces need root")
        } else if Command::new("ip").arg("-V").output().is_err() {
            Some("no `ip` command (install iproute2)")
        } else {
            None
        };
        if let Some(why) = cannot {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must run this test: {why}"
            );
            eprintln!("skipped: {why}");
            return None;
        }
        let mut lan = Lan {
            prefix: format!("hmd{}{tag}", std::process::id()),
            names: Vec::new(),
        };
        let hub = lan.add("hub");
        ip(&[
            "-n",
            &hub,
            "link",
            "add",
            "br0",
            "type",
            "bridge",
            "mcast_snooping",
            "0",
        ]);
        ip(&["-n", &hub, "link", "set", "br0", "up"]);
        for (host, addr) in hosts {
            let ns = lan.add(host);
            let port = format!("p{host}");
            ip(&[
                "-n", &ns, "link", "add", "eth0", "type", "veth", "peer", "name", &port, "netns",
                &hub,
            ]);
            ip(&["-n", &hub, "link", "set", &port, "master", "br0", "up"]);
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
            ip(&["-n", &ns, "addr", "add", addr, "dev", "eth0"]);
            ip(&["-n", &ns, "link", "set", "eth0", "up"]);
        }
        Some(lan)
    }

    /// Creates the namespace of `host` (anew if a leftover has its name).
    fn add(&mut self, host: &str) -> String {
        let name = self.name(host);
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        ip(&["netns", "add", &name]);
        self.names.push(name.clone());
        name
    }

    /// The namespace of `host`.
    pub fn name(&self, host: &str) -> String {
        format!("{}{host}", self.prefix)
    }

    /// `harmony -C dir ARGS` inside `host`, with discovery allowed.
    pub fn harmony(&self, host: &str, dir: &Path) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name(host)])
            .arg(cargo_bin("harmony"))
            .arg("-C")
            .arg(dir)
            .env_remove(OFF_ENV);
        cmd
    }

    /// [`Lan::harmony`] with `args`, run to the end.
    pub fn run(&self, host: &str, dir: &Path, args: &[&str]) -> Output {
        self.harmony(host, dir).args(args).output().unwrap()
    }

    /// `harmony serve --listen listen` inside `host`, discovery on.
    pub fn serve(&self, host: &str, dir: &Path, listen: &str) -> Serving {
        let mut serve = self.harmony(host, dir);
        serve.args(["--json", "serve", "--listen", listen]);
        Serving::spawn(serve)
    }

    /// Adds the IPv6 address `addr` (`address/prefix`) to `host`'s link,
    /// usable at once (no duplicate address detection).
    pub fn add_v6(&self, host: &str, addr: &str) {
        ip(&[
            "-n",
            &self.name(host),
            "addr",
            "add",
            addr,
            "dev",
            "eth0",
            "nodad",
        ]);
    }

    /// Gives `host` the address `to` instead of `from` (as DHCP might).
    pub fn readdress(&self, host: &str, from: &str, to: &str) {
        let ns = self.name(host);
        ip(&["-n", &ns, "addr", "del", from, "dev", "eth0"]);
        ip(&["-n", &ns, "addr", "add", to, "dev", "eth0"]);
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        for name in self.names.iter().rev() {
            let _ = Command::new("ip").args(["netns", "del", name]).output();
        }
    }
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}
