//! Deadlines for reading requests. actix answers 408 to a first request whose head is slow, and
//! closes idle kept-alive connections; nothing of its own bounds a body, or the head of a later
//! request on the same connection. Two pieces add that: [`Connection`], the stream the HTTP
//! layer reads, fails a read once a head has been arriving for longer than its deadline; and
//! [`bound_request`], a middleware, gives every body a deadline from the end of its head, answers
//! 408 and closes the connection when it passes. They share a [`ConnectionState`], which also
//! holds the connection's [`Admission`] until its first request has been read whole.

use std::cell::{Cell, RefCell};
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_http::BoxedPayloadStream;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::middleware::Next;
use actix_web::web::Bytes;
use actix_web::{HttpMessage, HttpResponse, http::StatusCode};
use futures_util::Stream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

use super::admission::Admission;
use crate::metrics::Metrics;

/// The deadlines, and where to count what they cut off; one per worker, shared by its
/// connections.
pub(super) struct Deadlines {
    pub head: Duration,
    pub body: Duration,
    pub metrics: Arc<Metrics>,
}

impl Deadlines {
    /// Counts a connection refused or closed by one of the listener's bounds.
    pub(super) fn count(&self, reason: &str) {
        self.metrics.inc(
            "otpgate_connections_closed_total",
            "Connections otpgate refused or closed because one of its bounds was reached, by reason.",
            &[("reason", reason)],
        );
    }
}

/// Where a connection is in reading its requests.
#[derive(Clone, Copy)]
enum Reading {
    /// Between requests: nothing of the next one has arrived (keep-alive bounds this wait).
    Idle,
    /// Part of a head has arrived; all of it must by then.
    Head(Instant),
    /// The application has the request; its body, if any, is bounded by [`bound_request`].
    Request,
}

/// What a connection's stream and its requests share. It lives on the connection's worker
/// thread, in the stream and in the connection's data that actix gives every request.
pub(super) struct ConnectionState {
    deadlines: Rc<Deadlines>,
    reading: Cell<Reading>,
    body_expired: Cell<bool>,
    admission: RefCell<Option<Admission>>,
}

impl ConnectionState {
    pub(super) fn new(deadlines: Rc<Deadlines>, admission: Admission) -> Rc<ConnectionState> {
        Rc::new(ConnectionState {
            deadlines,
            reading: Cell::new(Reading::Idle),
            body_expired: Cell::new(false),
            admission: RefCell::new(Some(admission)),
        })
    }

    /// The first request has been read whole (or the application answered without reading all
    /// of it): the connection is no longer pending for its address.
    fn first_request_read(&self) {
        let admission = self.admission.borrow_mut().take();
        drop(admission);
    }
}

/// The stream under one connection: plain TCP, or TLS over it.
pub(super) enum Transport {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

/// An accepted connection as the HTTP layer reads and writes it.
pub(super) struct Connection {
    transport: Transport,
    state: Rc<ConnectionState>,
    head_timer: Option<Pin<Box<Sleep>>>,
    /// A head missed its deadline: every later read fails, and the miss is counted once.
    head_expired: bool,
}

impl Connection {
    pub(super) fn new(transport: Transport, state: Rc<ConnectionState>) -> Connection {
        Connection {
            transport,
            state,
            head_timer: None,
            head_expired: false,
        }
    }

    /// The state the requests of this connection find in their connection data.
    pub(super) fn state(&self) -> Rc<ConnectionState> {
        self.state.clone()
    }

    fn head_overdue(&mut self, cx: &mut Context<'_>, deadline: Instant) -> bool {
        let timer = self
            .head_timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if timer.deadline() != deadline {
            timer.as_mut().reset(deadline);
        }
        timer.as_mut().poll(cx).is_ready()
    }

    fn head_timed_out(&mut self) -> Poll<io::Result<()>> {
        if !self.head_expired {
            self.head_expired = true;
            self.state.deadlines.count("head_timeout");
        }
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "a request head did not arrive in time",
        )))
    }
}

impl AsyncRead for Connection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let reading = this.state.reading.get();
        if this.head_expired {
            return this.head_timed_out();
        }
        if let Reading::Head(deadline) = reading
            && Instant::now() >= deadline
        {
            return this.head_timed_out();
        }
        let filled = buf.filled().len();
        let polled = match &mut this.transport {
            Transport::Plain(stream) => Pin::new(stream).poll_read(cx, buf),
            Transport::Tls(stream) => Pin::new(stream.as_mut()).poll_read(cx, buf),
        };
        match (&polled, reading) {
            (Poll::Ready(Ok(())), Reading::Idle) if buf.filled().len() > filled => {
                let deadline = Instant::now() + this.state.deadlines.head;
                this.state.reading.set(Reading::Head(deadline));
            }
            (Poll::Pending, Reading::Head(deadline)) if this.head_overdue(cx, deadline) => {
                return this.head_timed_out();
            }
            _ => {}
        }
        polled
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().transport {
            Transport::Plain(stream) => Pin::new(stream).poll_write(cx, buf),
            Transport::Tls(stream) => Pin::new(stream.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().transport {
            Transport::Plain(stream) => Pin::new(stream).poll_write_vectored(cx, bufs),
            Transport::Tls(stream) => Pin::new(stream.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match &self.transport {
            Transport::Plain(stream) => stream.is_write_vectored(),
            Transport::Tls(stream) => stream.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().transport {
            Transport::Plain(stream) => Pin::new(stream).poll_flush(cx),
            Transport::Tls(stream) => Pin::new(stream.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().transport {
            Transport::Plain(stream) => Pin::new(stream).poll_shutdown(cx),
            Transport::Tls(stream) => Pin::new(stream.as_mut()).poll_shutdown(cx),
        }
    }
}

/// A request body that must arrive whole before its deadline.
struct BodyDeadline {
    body: Payload,
    timer: Pin<Box<Sleep>>,
    state: Rc<ConnectionState>,
}

impl BodyDeadline {
    fn expired(&self) -> Poll<Option<Result<Bytes, PayloadError>>> {
        self.state.body_expired.set(true);
        Poll::Ready(Some(Err(PayloadError::Io(io::Error::new(
            io::ErrorKind::TimedOut,
            "the request body did not arrive in time",
        )))))
    }
}

impl Stream for BodyDeadline {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.state.body_expired.get() || this.timer.is_elapsed() {
            return this.expired();
        }
        match Pin::new(&mut this.body).poll_next(cx) {
            Poll::Ready(None) => {
                this.state.first_request_read();
                Poll::Ready(None)
            }
            Poll::Pending if this.timer.as_mut().poll(cx).is_ready() => this.expired(),
            polled => polled,
        }
    }
}

/// Middleware: marks the connection's request as handed to the application, gives its body a
/// deadline, and answers 408 and closes the connection when the body missed it. Requests that
/// did not come through the listener (there are none in otpgate) pass untouched.
pub async fn bound_request<B: MessageBody>(
    mut request: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    let Some(state) = request.conn_data::<Rc<ConnectionState>>().cloned() else {
        return next.call(request).await.map(|r| r.map_into_left_body());
    };
    state.reading.set(Reading::Request);
    state.body_expired.set(false);
    match request.take_payload() {
        Payload::None => state.first_request_read(),
        body => {
            let timer = Box::pin(tokio::time::sleep(state.deadlines.body));
            let state = state.clone();
            let bounded = BodyDeadline { body, timer, state };
            request.set_payload(Payload::from(Box::pin(bounded) as BoxedPayloadStream));
        }
    }
    // The request must not be cloned before routing (the router needs it unshared): the answer
    // gives it back.
    let answered = next.call(request).await;
    state.first_request_read();
    state.reading.set(Reading::Idle);
    let answer = answered?;
    if !state.body_expired.get() {
        return Ok(answer.map_into_left_body());
    }
    state.deadlines.count("body_timeout");
    let timeout = HttpResponse::build(StatusCode::REQUEST_TIMEOUT)
        .force_close()
        .content_type("text/plain; charset=utf-8")
        .body("The request did not arrive in time.\n");
    let (http_request, _) = answer.into_parts();
    Ok(ServiceResponse::new(http_request, timeout).map_into_right_body())
}
