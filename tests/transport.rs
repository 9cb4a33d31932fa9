//! The transport in-process on 127.0.0.1: mutual authentication, refusals,
//! handshake mismatches, and a server that keeps serving good peers whatever
//! a bad one does.

#[path = "support/net.rs"]
mod net;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use harmony::model::{NodeId, RepoId};
use harmony::net::{
    BoxFuture, Builtin, FramedStream, Handler, NetError, Node, PeerInfo, ServerEvent, TrustList,
};
use harmony::proto::{self, close, ErrorCode, Request, Response};
use net::{client, config, eventually, within, Ident, RawClient, Server};

/// A server trusting one client, in one repository.
struct Pair {
    repo: RepoId,
    server_ident: Ident,
    client_ident: Ident,
    server: Server,
}

fn pair() -> Pair {
    pair_with(|_| {})
}

fn pair_with(tweak: impl FnOnce(&mut harmony::net::NodeConfig)) -> Pair {
    let repo = RepoId::random();
    let server_ident = Ident::new();
    let client_ident = Ident::new();
    let trust = TrustList::from_peers([(client_ident.id(), "client".to_owned())]);
    let mut cfg = config(repo, "server");
    tweak(&mut cfg);
    let server = Server::start(&server_ident, cfg, trust);
    Pair {
        repo,
        server_ident,
        client_ident,
        server,
    }
}

impl Pair {
    /// The trusted client connects and checks the server with a ping.
    async fn good_peer_is_served(&self) {
        let node = client(&self.client_ident, config(self.repo, "client"));
        let conn = node
            .connect(self.server.addr, self.server.id(), "server")
            .await
            .expect("trusted client connects");
        conn.ping(b"still there?").await.expect("ping");
        conn.close();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_auth_succeeds_and_requests_work() {
    within(60, async {
        let mut p = pair();
        let node = client(&p.client_ident, config(p.repo, "client"));
        let conn = node
            .connect(p.server.addr, p.server.id(), "server")
            .await
            .unwrap();
        assert_eq!(conn.peer().node_id, p.server_ident.id());
        assert_eq!(conn.peer().own_name, "server");
        assert_eq!(conn.peer().version, proto::PROTOCOL_VERSION);
        let event = p
            .server
            .event(|e| matches!(e, ServerEvent::Accepted { .. }))
            .await;
        match event {
            ServerEvent::Accepted {
                node_id,
                name,
                serves,
            } => {
                assert_eq!(node_id, p.client_ident.id());
                assert_eq!(name, "client");
                assert!(serves, "a bound node says it serves");
            }
            _ => unreachable!(),
        }
        let rtt = conn.ping(&[7; 1000]).await.unwrap();
        assert!(rtt < Duration::from_secs(5));
        assert_eq!(conn.bulk(3 << 20).await.unwrap(), 3 << 20);
        assert_eq!(conn.bulk(0).await.unwrap(), 0);
        // Several requests at once on one connection.
        let results = futures_join(vec![conn.ping(b"a"), conn.ping(b"b"), conn.ping(b"c")]).await;
        assert!(results.iter().all(Result::is_ok));
        conn.close();
        p.server
            .event(|e| matches!(e, ServerEvent::Closed { .. }))
            .await;
        eventually("connection released", || {
            p.server.node.stats().connections() == 0
        })
        .await;
        // A client-only endpoint (a one-shot command) says it does not serve,
        // so the server's live node will not dial it back.
        let one_shot =
            Node::bind_client(p.client_ident.identity.clone(), config(p.repo, "client")).unwrap();
        let conn = one_shot
            .connect(p.server.addr, p.server.id(), "server")
            .await
            .unwrap();
        let event = p
            .server
            .event(|e| matches!(e, ServerEvent::Accepted { .. }))
            .await;
        assert!(matches!(event, ServerEvent::Accepted { serves: false, .. }));
        conn.close();
        p.server.stop().await;
    })
    .await;
}

async fn futures_join<F: std::future::Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut out = Vec::new();
    for f in futures {
        out.push(f.await);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untrusted_client_is_refused_and_told_why() {
    within(60, async {
        let mut p = pair();
        let stranger = Ident::new();
        let node = client(&stranger, config(p.repo, "stranger"));
        let err = match node.connect(p.server.addr, p.server.id(), "server").await {
            Err(e) => e,
            Ok(_) => panic!("an untrusted client must be refused"),
        };
        assert!(matches!(err, NetError::NotTrusted { .. }), "{err:?}");
        let text = err.to_string();
        assert!(
            text.contains("peer server does not trust this node"),
            "{text}"
        );
        assert!(
            text.contains(&format!("harmony peer add stranger {}", stranger.id())),
            "{text}"
        );
        p.server
            .event(|e| matches!(e, ServerEvent::Refused { .. }))
            .await;
        p.good_peer_is_served().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_refuses_a_server_with_another_id() {
    within(60, async {
        let p = pair();
        let node = client(&p.client_ident, config(p.repo, "client"));
        let expected = NodeId([42; 32]);
        let err = match node.connect(p.server.addr, expected, "nas").await {
            Err(e) => e,
            Ok(_) => panic!("a server with another id must be refused"),
        };
        match &err {
            NetError::WrongPeer {
                expected: e, found, ..
            } => {
                assert_eq!(*e, expected);
                assert_eq!(*found, p.server.id());
            }
            other => panic!("expected WrongPeer, got {other:?}"),
        }
        assert!(err.to_string().contains("not peer nas"), "{err}");
        p.good_peer_is_served().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stolen_certificate_without_its_key_fails() {
    within(60, async {
        let mut p = pair();
        // The attacker has the trusted client's certificate and its own key.
        let attacker = Ident::new();
        let stolen = p.client_ident.identity.certificate().clone();
        let attempt = async {
            let raw = RawClient::connect(
                p.server.addr,
                p.server.id(),
                stolen,
                attacker.identity.private_key(),
            )
            .await?;
            let hello = proto::Hello::new(p.repo, p.client_ident.id(), "client");
            let mut recv = raw
                .send_hello(&proto::encode_frame(&hello).unwrap())
                .await?;
            let mut buf = [0u8; 4];
            recv.read_exact(&mut buf).await?;
            Ok::<_, anyhow::Error>(())
        };
        let result = tokio::time::timeout(Duration::from_secs(10), attempt)
            .await
            .expect("the attempt ends");
        assert!(result.is_err(), "a stolen certificate must not work");
        let event = p
            .server
            .event(|e| matches!(e, ServerEvent::Refused { .. }))
            .await;
        match event {
            ServerEvent::Refused { reason, .. } => {
                assert!(reason.contains("TLS handshake failed"), "{reason}")
            }
            _ => unreachable!(),
        }
        p.good_peer_is_served().await;
    })
    .await;
}

/// Server and client trust each other but disagree on the repository or
/// protocol version: both sides see a readable reason.
async fn mismatch(
    tweak_client: impl FnOnce(&mut harmony::net::NodeConfig),
    client_expects: &str,
    server_expects: &str,
) {
    let mut p = pair();
    let mut cfg = config(p.repo, "client");
    tweak_client(&mut cfg);
    let node = client(&p.client_ident, cfg);
    let err = match node.connect(p.server.addr, p.server.id(), "server").await {
        Err(e) => e,
        Ok(_) => panic!("the handshake must fail"),
    };
    assert!(matches!(err, NetError::Incompatible(_)), "{err:?}");
    assert!(
        err.to_string().contains(client_expects),
        "client saw: {err}"
    );
    let event = p
        .server
        .event(|e| matches!(e, ServerEvent::Refused { .. }))
        .await;
    match event {
        ServerEvent::Refused {
            reason, node_id, ..
        } => {
            assert_eq!(node_id, Some(p.client_ident.id()));
            assert!(reason.contains(server_expects), "server saw: {reason}");
        }
        _ => unreachable!(),
    }
    p.good_peer_is_served().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repository_mismatch_is_explained_on_both_sides() {
    within(60, async {
        let other = RepoId([0xab; 16]);
        mismatch(
            |c| c.repo_id = other,
            "peer server belongs to repository",
            &format!("peer client belongs to repository {other}"),
        )
        .await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_mismatch_is_explained_on_both_sides() {
    within(60, async {
        mismatch(
            |c| c.protocol = (7, 7),
            "peer server speaks protocol 6, we speak 7",
            "peer client speaks protocol 7, we speak 6",
        )
        .await;
    })
    .await;
}

/// Sends `bytes` on a new raw stream of an established connection and
/// returns the server's first answer frame (if any) and how the stream ended.
async fn raw_request(conn: &quinn::Connection, bytes: &[u8], finish: bool) -> Option<Response> {
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    send.write_all(bytes).await.unwrap();
    if finish {
        send.finish().unwrap();
    }
    let mut header = [0u8; 4];
    recv.read_exact(&mut header).await.ok()?;
    let len = proto::frame_len(header).ok()?;
    let mut body = vec![0u8; len];
    recv.read_exact(&mut body).await.ok()?;
    proto::decode_body(&body).ok()
}

fn error_code(response: Option<Response>) -> ErrorCode {
    match response {
        Some(Response::Error { code, .. }) => code,
        other => panic!("expected an error response, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_truncated_and_oversized_frames_close_the_stream_only() {
    within(60, async {
        let mut p = pair();
        let node = client(&p.client_ident, config(p.repo, "client"));
        let conn = node
            .connect(p.server.addr, p.server.id(), "server")
            .await
            .unwrap();
        let raw = conn.connection();

        // Garbage body behind a valid header.
        let garbage = [0, 0, 0, 6, 0, 0xff, 0xff, 0xff, 0xff, 0xff];
        assert_eq!(
            error_code(raw_request(raw, &garbage, true).await),
            ErrorCode::MALFORMED
        );
        // An announced length above 1 MiB is refused before reading it.
        let oversized = ((proto::MAX_FRAME + 1) as u32).to_be_bytes();
        let answer = raw_request(raw, &oversized, false).await;
        match &answer {
            Some(Response::Error { message, .. }) => {
                assert!(message.contains("exceeds"), "{message}")
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(error_code(answer), ErrorCode::MALFORMED);
        // A frame cut short by the end of the stream.
        let mut truncated = 100u32.to_be_bytes().to_vec();
        truncated.extend_from_slice(&[0; 10]);
        assert_eq!(
            error_code(raw_request(raw, &truncated, true).await),
            ErrorCode::MALFORMED
        );
        // A header cut short.
        assert_eq!(
            error_code(raw_request(raw, &[0, 0], true).await),
            ErrorCode::MALFORMED
        );
        // Trailing bytes after a valid request.
        let mut trailing = proto::encode_frame(&Request::Bulk { len: 1 }).unwrap();
        trailing.push(0);
        let len = (trailing.len() - 4) as u32;
        trailing[..4].copy_from_slice(&len.to_be_bytes());
        assert_eq!(
            error_code(raw_request(raw, &trailing, true).await),
            ErrorCode::MALFORMED
        );
        // A request kind from a future version.
        assert_eq!(
            error_code(raw_request(raw, &[0, 0, 0, 2, Request::KNOWN_KINDS as u8, 0], true).await),
            ErrorCode::UNSUPPORTED
        );
        // A request breaking a limit.
        let big = postcard::to_stdvec(&Request::Ping {
            payload: vec![0; proto::MAX_PING_PAYLOAD + 1],
        })
        .unwrap();
        let mut frame = (big.len() as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(&big);
        assert_eq!(
            error_code(raw_request(raw, &frame, true).await),
            ErrorCode::MALFORMED
        );

        p.server
            .event(|e| matches!(e, ServerEvent::StreamFailed { .. }))
            .await;
        // The same connection still works, and so does a new one.
        conn.ping(b"ok")
            .await
            .expect("connection survives bad streams");
        p.good_peer_is_served().await;
        eventually("no stream left behind", || {
            p.server.node.stats().streams() == 0
        })
        .await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_garbage_hello_closes_the_connection() {
    within(60, async {
        let mut p = pair();
        let raw = RawClient::connect_as(&p.client_ident, p.server.addr, p.server.id()).await;
        let _recv = raw
            .send_hello(&[0, 0, 0, 3, 0xff, 0xff, 0xff])
            .await
            .unwrap();
        expect_closed(&raw.conn, close::PROTOCOL_ERROR, "Hello").await;
        p.server
            .event(|e| matches!(e, ServerEvent::Refused { .. }))
            .await;
        p.good_peer_is_served().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_without_hello_is_closed_after_the_timeout() {
    within(60, async {
        let mut p = pair_with(|c| c.handshake_timeout = Duration::from_millis(500));
        let raw = RawClient::connect_as(&p.client_ident, p.server.addr, p.server.id()).await;
        expect_closed(&raw.conn, close::HANDSHAKE_TIMEOUT, "").await;
        p.server
            .event(|e| matches!(e, ServerEvent::Refused { .. }))
            .await;
        p.good_peer_is_served().await;
        eventually("connection released", || {
            p.server.node.stats().connections() == 0
        })
        .await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_streams_are_bounded_and_timed_out() {
    within(60, async {
        const MAX: u32 = 8;
        let p = pair_with(|c| {
            c.max_streams = MAX;
            c.stream_timeout = Duration::from_secs(2);
        });
        let node = client(&p.client_ident, config(p.repo, "client"));
        let conn = node
            .connect(p.server.addr, p.server.id(), "server")
            .await
            .unwrap();
        let raw = conn.connection().clone();
        // Open as many streams as the server allows and send one byte on
        // each: the server sees them but never gets a whole request. QUIC
        // flow control stops the peer at the limit (quinn announces freed
        // stream credit in batches, so the Hello stream's slot may not have
        // come back yet: MAX - 1 or MAX streams).
        let mut held = Vec::new();
        while let Ok(opened) = tokio::time::timeout(Duration::from_millis(300), raw.open_bi()).await
        {
            let (mut send, recv) = opened.unwrap();
            send.write_all(&[0]).await.unwrap();
            held.push((send, recv));
            assert!(
                held.len() <= MAX as usize,
                "more streams than allowed were opened"
            );
        }
        assert!(
            held.len() >= MAX as usize - 1,
            "only {} streams",
            held.len()
        );
        let stats = p.server.node.stats().clone();
        let opened = held.len();
        eventually("server sees every silent stream", || {
            stats.streams() == opened
        })
        .await;
        // Meanwhile another peer is served.
        p.good_peer_is_served().await;
        // The stream timeout frees every slot; nothing leaks.
        eventually("silent streams timed out", || stats.streams() == 0).await;
        for (_, mut recv) in held {
            let mut buf = [0u8; 1];
            assert!(recv.read_exact(&mut buf).await.is_err(), "stream was reset");
        }
        // Stream credit came back: the same connection can make requests.
        conn.ping(b"after").await.expect("credit returned");
        // Many more rounds of the same leave nothing behind.
        for _ in 0..3 {
            for _ in 0..MAX {
                let (mut send, _recv) = raw.open_bi().await.unwrap();
                send.write_all(&[0, 0]).await.unwrap();
            }
        }
        eventually("all silent streams timed out", || stats.streams() == 0).await;
        conn.close();
        eventually("connections released", || stats.connections() == 0).await;
    })
    .await;
}

/// A handler that counts pings and passes everything to [`Builtin`]: how
/// later request kinds plug into the server.
struct Counting(Arc<AtomicUsize>);

impl Handler for Counting {
    fn handle<'a>(
        &'a self,
        peer: &'a PeerInfo,
        request: Request,
        stream: &'a mut FramedStream,
    ) -> BoxFuture<'a, Result<(), NetError>> {
        if matches!(request, Request::Ping { .. }) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
        Builtin.handle(peer, request, stream)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_handlers_plug_in_and_many_peers_are_served_at_once() {
    within(60, async {
        let repo = RepoId::random();
        let server_ident = Ident::new();
        let clients: Vec<Ident> = (0..6).map(|_| Ident::new()).collect();
        let trust = TrustList::from_peers(
            clients
                .iter()
                .enumerate()
                .map(|(i, c)| (c.id(), format!("client{i}"))),
        );
        let count = Arc::new(AtomicUsize::new(0));
        let mut server = Server::start_with(
            &server_ident,
            config(repo, "server"),
            trust,
            Arc::new(Counting(count.clone())),
        );
        let mut tasks = tokio::task::JoinSet::new();
        for (i, c) in clients.iter().enumerate() {
            let node = client(c, config(repo, &format!("client{i}")));
            let (addr, id) = (server.addr, server.id());
            tasks.spawn(async move {
                let conn = node.connect(addr, id, "server").await.unwrap();
                for _ in 0..5 {
                    conn.ping(b"x").await.unwrap();
                }
                assert_eq!(conn.bulk(1 << 20).await.unwrap(), 1 << 20);
                conn.close();
            });
        }
        while let Some(done) = tasks.join_next().await {
            done.unwrap();
        }
        assert_eq!(count.load(Ordering::SeqCst), 30);
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trust_changes_apply_to_the_next_connection() {
    within(60, async {
        let repo = RepoId::random();
        let server_ident = Ident::new();
        let newcomer = Ident::new();
        let table: Arc<std::sync::Mutex<Vec<(NodeId, String)>>> = Arc::default();
        let node = Arc::new(
            harmony::net::Node::bind(
                server_ident.identity.clone(),
                config(repo, "server"),
                TrustList::new(),
            )
            .unwrap(),
        );
        let addr = node.local_addr().unwrap();
        let guests = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (source_table, source_guests) = (table.clone(), guests.clone());
        let source: harmony::net::TrustSource = Arc::new(move || {
            Ok(harmony::net::TrustSnapshot {
                peers: source_table.lock().unwrap().clone(),
                guests: source_guests.load(Ordering::SeqCst),
            })
        });
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = node.clone();
        let task = tokio::spawn(async move {
            serving
                .serve(Arc::new(Builtin), Some(source), async {
                    let _ = stopped.await;
                })
                .await
        });
        let client_node = client(&newcomer, config(repo, "newcomer"));
        let refused = client_node.connect(addr, node.node_id(), "server").await;
        assert!(matches!(refused, Err(NetError::NotTrusted { .. })));
        // `peer add` on the server side, while it serves.
        table
            .lock()
            .unwrap()
            .push((newcomer.id(), "newcomer".to_owned()));
        let conn = client_node
            .connect(addr, node.node_id(), "server")
            .await
            .expect("trusted after the table changed");
        conn.ping(b"hi").await.unwrap();
        conn.close();
        // `peer remove`.
        table.lock().unwrap().clear();
        let refused = client_node.connect(addr, node.node_id(), "server").await;
        assert!(matches!(refused, Err(NetError::NotTrusted { .. })));
        // An invite pending: an untrusted node connects as a guest, and
        // every request but `Join` is refused.
        guests.store(true, Ordering::SeqCst);
        let guest = client_node
            .connect(addr, node.node_id(), "server")
            .await
            .expect("a guest while an invite is pending");
        for request in [
            Request::Ping { payload: vec![1] },
            Request::Bulk { len: 1 },
            Request::Has {
                hash: harmony::model::ContentHash([0; 32]),
            },
        ] {
            match guest.request(&request).await {
                Err(NetError::Remote { code, message, .. }) => {
                    assert_eq!(code, ErrorCode::REFUSED);
                    assert!(message.contains("only a Join"), "{message}");
                }
                other => panic!("a guest's {request:?} got {:?}", other.map(|r| r.0)),
            }
        }
        // `Join` reaches the handler (this one serves no location).
        let join = Request::Join(proto::JoinRequest {
            invite: harmony::model::InviteId([0; 8]),
            port: 0,
            mac: [0; 32],
        });
        match guest.request(&join).await {
            Err(NetError::Remote { code, .. }) => assert_eq!(code, ErrorCode::UNSUPPORTED),
            other => panic!("Join got {:?}", other.map(|r| r.0)),
        }
        guest.close();
        guests.store(false, Ordering::SeqCst);
        let refused = client_node.connect(addr, node.node_id(), "server").await;
        assert!(matches!(refused, Err(NetError::NotTrusted { .. })));
        let _ = stop.send(());
        task.await.unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_connections_and_stops_serving() {
    within(60, async {
        let mut p = pair();
        let node = client(&p.client_ident, config(p.repo, "client"));
        let conn = node
            .connect(p.server.addr, p.server.id(), "server")
            .await
            .unwrap();
        // A bulk transfer in flight when the server stops is abandoned:
        // the client sees an error, never a short transfer taken as whole.
        let stats = p.server.node.stats().clone();
        let (addr, id) = (p.server.addr, p.server.id());
        let transfer = tokio::spawn(async move {
            let result = conn.bulk(8 << 30).await;
            (result, conn)
        });
        eventually("bulk in flight", || stats.streams() == 1).await;
        p.server.stop().await;
        let (result, conn) = transfer.await.unwrap();
        assert!(result.is_err(), "{result:?}");
        let reason = tokio::time::timeout(Duration::from_secs(5), conn.connection().closed())
            .await
            .expect("connection closed");
        // The server closes with SHUTDOWN. Under a full-speed bulk burst the
        // close frame can be lost on loopback; the server's endpoint then
        // answers the client's next packets with a stateless reset. Either
        // way the connection ends at once, never as an idle timeout.
        assert!(
            reason.to_string().contains("shutting down")
                || matches!(reason, quinn::ConnectionError::Reset),
            "{reason}"
        );
        assert_eq!(stats.streams(), 0);
        assert_eq!(stats.connections(), 0);
        let again = node.connect(addr, id, "server").await;
        assert!(again.is_err());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_node_may_talk_to_another_repository() {
    within(60, async {
        let p = pair();
        let mut cfg = config(RepoId([0xcd; 16]), "client");
        cfg.fresh = true;
        let node = client(&p.client_ident, cfg);
        let conn = node
            .connect(p.server.addr, p.server.id(), "server")
            .await
            .expect("a fresh node is not a repository mismatch");
        assert_eq!(conn.peer().repo_id, p.repo);
        assert!(!conn.peer().fresh);
        conn.ping(b"join me").await.unwrap();
        // Once it joined, it announces the server's repository.
        *node.membership().write().unwrap() = harmony::net::Membership {
            repo_id: p.repo,
            fresh: false,
        };
        let again = node
            .connect(p.server.addr, p.server.id(), "server")
            .await
            .unwrap();
        again.ping(b"member").await.unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hello_claiming_another_id_is_refused() {
    within(60, async {
        let mut p = pair();
        let raw = RawClient::connect_as(&p.client_ident, p.server.addr, p.server.id()).await;
        let liar = proto::Hello::new(p.repo, NodeId([3; 32]), "client");
        let mut recv = raw
            .send_hello(&proto::encode_frame(&liar).unwrap())
            .await
            .unwrap();
        // The server still sends its Hello, then closes with the reason.
        let _ = recv.read_to_end(proto::MAX_FRAME + 4).await;
        expect_closed(&raw.conn, close::IDENTITY_MISMATCH, "certificate proves").await;
        p.server
            .event(|e| matches!(e, ServerEvent::Refused { .. }))
            .await;
        p.good_peer_is_served().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_limit_are_refused() {
    within(60, async {
        let p = pair_with(|c| c.max_connections = 2);
        let node = client(&p.client_ident, config(p.repo, "client"));
        let first = node
            .connect(p.server.addr, p.server.id(), "server")
            .await
            .unwrap();
        let second = node
            .connect(p.server.addr, p.server.id(), "server")
            .await
            .unwrap();
        let third = node.connect(p.server.addr, p.server.id(), "server").await;
        assert!(third.is_err(), "a third connection must be refused");
        first.ping(b"1").await.unwrap();
        second.close();
        let stats = p.server.node.stats().clone();
        eventually("a slot is free again", || stats.connections() == 1).await;
        let again = node
            .connect(p.server.addr, p.server.id(), "server")
            .await
            .expect("accepted once a slot is free");
        again.ping(b"3").await.unwrap();
    })
    .await;
}

/// One trusted peer cannot take every connection slot: beyond its own
/// limit it is closed with `BUSY`, while another peer still gets in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_peer_cannot_take_every_connection() {
    within(60, async {
        let repo = RepoId::random();
        let (server_ident, greedy, other) = (Ident::new(), Ident::new(), Ident::new());
        let trust = TrustList::from_peers([
            (greedy.id(), "greedy".to_owned()),
            (other.id(), "other".to_owned()),
        ]);
        let mut cfg = config(repo, "server");
        cfg.max_connections_per_peer = 2;
        let server = Server::start(&server_ident, cfg, trust);
        let node = client(&greedy, config(repo, "greedy"));
        let connect = || node.connect(server.addr, server.id(), "server");
        let first = connect().await.unwrap();
        let _second = connect().await.unwrap();
        match connect().await {
            Err(NetError::Closed { reason, .. }) => {
                assert!(reason.contains("too many connections"), "{reason}")
            }
            other => panic!("a third connection must be refused: {:?}", other.err()),
        }
        let node = client(&other, config(repo, "other"));
        let conn = node
            .connect(server.addr, server.id(), "server")
            .await
            .expect("another peer gets in");
        conn.ping(b"hi").await.unwrap();
        first.close();
        let stats = server.node.stats().clone();
        eventually("the slot is given back", || stats.connections() == 2).await;
        let again = client(&greedy, config(repo, "greedy"));
        let conn = again
            .connect(server.addr, server.id(), "server")
            .await
            .expect("accepted once one of its connections ended");
        conn.ping(b"again").await.unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_stops_reading_a_bulk_answer_does_not_hold_the_server() {
    within(60, async {
        let p = pair_with(|c| c.stream_timeout = Duration::from_millis(500));
        let node = client(&p.client_ident, config(p.repo, "client"));
        let conn = node
            .connect(p.server.addr, p.server.id(), "server")
            .await
            .unwrap();
        // Ask for 1 GiB and never read it: flow control stops the server's
        // writes, and the stream timeout ends the handler.
        let stalled = conn.open(&Request::Bulk { len: 1 << 30 }).await.unwrap();
        let stats = p.server.node.stats().clone();
        eventually("bulk handler running", || stats.streams() == 1).await;
        eventually("stalled bulk abandoned", || stats.streams() == 0).await;
        drop(stalled);
        conn.ping(b"still fine").await.unwrap();
        p.good_peer_is_served().await;
    })
    .await;
}

/// Waits (up to 10 s) for the server to close `conn` with `code` and a reason
/// containing `text`.
async fn expect_closed(conn: &quinn::Connection, code: u32, text: &str) {
    let reason = tokio::time::timeout(Duration::from_secs(10), conn.closed())
        .await
        .expect("connection closed in time");
    match reason {
        quinn::ConnectionError::ApplicationClosed(c) => {
            assert_eq!(c.error_code, quinn::VarInt::from_u32(code));
            assert!(String::from_utf8_lossy(&c.reason).contains(text), "{c:?}");
        }
        other => panic!("{other:?}"),
    }
}

/// A server killed without closing (its runtime dropped, as SIGKILL would)
/// and started again on its port with its identity resets the connections
/// of its first life at their next packet (net/reset.rs). With a random
/// reset key per process the client could not trust the reset, and waited
/// for its stream timeout instead.
#[test]
fn a_restarted_server_resets_the_connections_of_the_killed_one() {
    let runtime = |threads| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
            .unwrap()
    };
    let repo = RepoId::random();
    let server_ident = Ident::new();
    let client_ident = Ident::new();
    let trust = || TrustList::from_peers([(client_ident.id(), "client".to_owned())]);

    let first_life = runtime(1);
    let server = first_life
        .block_on(async { Server::start(&server_ident, config(repo, "server"), trust()) });
    let addr = server.addr;
    let client_side = runtime(1);
    let (_node, conn) = client_side.block_on(async {
        let node = client(&client_ident, config(repo, "client"));
        let conn = node
            .connect(addr, server_ident.id(), "server")
            .await
            .unwrap();
        conn.ping(b"first life").await.expect("ping");
        (node, conn)
    });

    drop(first_life);
    drop(server);
    let second_life = runtime(1);
    let mut cfg = config(repo, "server");
    cfg.listen = addr;
    let _restarted = second_life.block_on(async { Server::start(&server_ident, cfg, trust()) });

    client_side.block_on(async {
        let outcome = within(20, conn.ping(b"second life?")).await;
        assert!(
            outcome.is_err(),
            "a ping on the old connection cannot succeed"
        );
        assert_eq!(
            conn.connection().close_reason(),
            Some(quinn::ConnectionError::Reset),
            "the old connection ends by a stateless reset, got {outcome:?}"
        );
    });
}
