//! An echo server over a [`ServerTransport`] (the transport tests').

use std::net::SocketAddr;
use std::sync::Arc;

use sluicegate::rpc::{ServerTransport, TransportError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::PATIENCE as LIMIT;

/// An echo server on 127.0.0.1:0 for up to `conns` connections; every accept result (layers,
/// or the error) is sent on the returned channel.
pub async fn echo_server(
    t: ServerTransport,
    conns: usize,
) -> (
    SocketAddr,
    mpsc::Receiver<Result<&'static str, TransportError>>,
) {
    let listener = ServerTransport::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::channel(conns.max(1));
    let t = Arc::new(t);
    tokio::spawn(async move {
        for _ in 0..conns {
            let Ok(Ok((tcp, peer))) = tokio::time::timeout(LIMIT, listener.accept()).await else {
                return;
            };
            let t = t.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                match t.accept(tcp, peer).await {
                    Ok(mut s) => {
                        let _ = tx.send(Ok(s.layers())).await;
                        let mut buf = vec![0u8; 64 * 1024];
                        loop {
                            match tokio::time::timeout(LIMIT, s.read(&mut buf)).await {
                                Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
                                Ok(Ok(n)) => {
                                    if s.write_all(&buf[..n]).await.is_err()
                                        || s.flush().await.is_err()
                                    {
                                        break;
                                    }
                                }
                            }
                        }
                        let _ = s.shutdown().await;
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                    }
                }
            });
        }
    });
    (addr, rx)
}
