//! The HTTP body of a download: the encoder writes into a [`BodyWriter`] on a blocking thread,
//! the [`Download`] stream hands its blocks to the client and ends cleanly only after a complete
//! file.

use super::{BLOCK_BYTES, BODY_BLOCKS, CLIENT_IDLE};
use axum::body::Bytes;
use std::io::{self, Write};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::SendTimeoutError;

/// A new body: the writer for the encoder, the stream for the response, and the [`Ending`]
/// that says whether the file was complete.
pub(super) fn channel() -> (BodyWriter, Download, Ending) {
    let (tx, rx) = mpsc::channel(BODY_BLOCKS);
    let complete = Arc::new(AtomicBool::new(false));
    let download = Download {
        rx,
        complete: complete.clone(),
        ended: false,
    };
    let writer = BodyWriter {
        // `tx` outlives this clone (in the `Ending`), so the body sees `complete` before its
        // end.
        tx: tx.clone(),
        buf: Vec::with_capacity(BLOCK_BYTES),
        runtime: tokio::runtime::Handle::current(),
    };
    (writer, download, Ending { tx, complete })
}

/// Ends the body once the encoder is done: cleanly only after a complete file.
#[derive(Debug)]
pub(super) struct Ending {
    tx: mpsc::Sender<Bytes>,
    complete: Arc<AtomicBool>,
}

impl Ending {
    pub(super) fn end(self, complete: bool) {
        if complete {
            self.complete.store(true, Ordering::SeqCst);
        }
        drop(self.tx);
    }
}

/// The HTTP body: the encoder's blocks, then the end only if the encoder said the file is
/// complete; otherwise (an error, a panic) an error, so that the server aborts the response
/// rather than ending it cleanly.
pub(super) struct Download {
    rx: mpsc::Receiver<Bytes>,
    complete: Arc<AtomicBool>,
    ended: bool,
}

impl futures_util::Stream for Download {
    type Item = io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.ended {
            return Poll::Ready(None);
        }
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(block)) => Poll::Ready(Some(Ok(block))),
            Poll::Ready(None) => {
                self.ended = true;
                if self.complete.load(Ordering::SeqCst) {
                    Poll::Ready(None)
                } else {
                    Poll::Ready(Some(Err(io::Error::other(
                        "the export failed midway; the file is incomplete",
                    ))))
                }
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

/// `Write` into the body channel in blocks of [`BLOCK_BYTES`]; used on a blocking thread.
/// Fails with `BrokenPipe` when the client went away, `TimedOut` when it stopped reading.
pub(super) struct BodyWriter {
    tx: mpsc::Sender<Bytes>,
    buf: Vec<u8>,
    runtime: tokio::runtime::Handle,
}

impl BodyWriter {
    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let block = Bytes::from(std::mem::replace(
            &mut self.buf,
            Vec::with_capacity(BLOCK_BYTES),
        ));
        match self
            .runtime
            .block_on(self.tx.send_timeout(block, CLIENT_IDLE))
        {
            Ok(()) => Ok(()),
            Err(SendTimeoutError::Closed(_)) => Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the client went away",
            )),
            Err(SendTimeoutError::Timeout(_)) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("the client read nothing for {} s", CLIENT_IDLE.as_secs()),
            )),
        }
    }
}

impl Write for BodyWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= BLOCK_BYTES {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn the_body_ends_cleanly_only_after_a_complete_file() {
        use futures_util::StreamExt;
        for complete in [true, false] {
            let (tx, rx) = mpsc::channel(2);
            let flag = Arc::new(AtomicBool::new(false));
            let mut body = Download {
                rx,
                complete: flag.clone(),
                ended: false,
            };
            tx.send(Bytes::from_static(b"a,b\r\n")).await.unwrap();
            flag.store(complete, Ordering::SeqCst);
            drop(tx);
            assert_eq!(body.next().await.unwrap().unwrap(), "a,b\r\n");
            match body.next().await {
                None => assert!(complete),
                Some(Err(e)) => assert!(!complete, "{e}"),
                Some(Ok(b)) => panic!("{b:?}"),
            }
            assert!(body.next().await.is_none());
        }
    }

    #[tokio::test]
    async fn the_writer_notices_a_client_that_went_away() {
        let (tx, rx) = mpsc::channel(1);
        let runtime = tokio::runtime::Handle::current();
        let written = tokio::task::spawn_blocking(move || {
            let mut w = BodyWriter {
                tx,
                buf: Vec::new(),
                runtime,
            };
            // Small writes are collected; a flush hands them over.
            w.write_all(b"header\n")?;
            w.flush()?;
            // The first block may still fit the channel; the second waits until the receiver
            // is gone.
            w.write_all(&[b'x'; BLOCK_BYTES])?;
            w.write_all(&[b'x'; BLOCK_BYTES])
        });
        let mut rx = rx;
        assert_eq!(rx.recv().await.unwrap(), "header\n");
        drop(rx);
        let e = written.await.unwrap().unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::BrokenPipe);
        let e = stadtpuls_opendata_export::encode::EncodeError::from(e);
        assert!(crate::exports::columns::ExportError::from(e).client_gone());
    }
}
