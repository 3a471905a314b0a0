//! The monitors' door: HL7 v2 over MLLP (`serve --mllp ADDR`). Each connection is a monitor or a
//! gateway, long-lived; each message is read ([`ketaflow_hl7::parse`]), given to the application
//! layer ([`ketaflow_app::App::record_monitor_message`]) and acknowledged only once what it carries is committed.
//! A bad message is answered (AE or AR) and the connection stays open for the next one. Nothing a
//! message carries is logged: only the device, the control id and the outcome.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::state::AppState;
use futures_util::{SinkExt, StreamExt};
use ketaflow_hl7::ack::{AckCode, AckError, acknowledgement};
use ketaflow_hl7::mllp::{Mllp, MllpError};
use ketaflow_hl7::{ErrorCode, Pcd01Error};
use time::PrimitiveDateTime;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::Framed;

/// Our MSH-3 in acknowledgements.
pub const RECEIVER: &str = "KETAFLOW";

/// Accepts monitor connections until `shutdown` resolves; each connection runs on its own task.
pub async fn serve(listener: TcpListener, app: AppState, shutdown: impl std::future::Future<Output = ()>) {
    let counter = Arc::new(AtomicU64::new(0));
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let (app, counter) = (app.clone(), counter.clone());
                    tokio::spawn(async move {
                        tracing::info!(%peer, "monitor connected (MLLP)");
                        let handled = connection(stream, &app, &counter).await;
                        tracing::info!(%peer, messages = handled, "monitor disconnected (MLLP)");
                    });
                }
                Err(e) => tracing::warn!(error = %e, "MLLP accept failed"),
            },
        }
    }
}

/// Serves one connection; returns how many messages it answered.
async fn connection(stream: TcpStream, app: &AppState, counter: &AtomicU64) -> u64 {
    let mut framed = Framed::new(stream, Mllp::default());
    let mut handled = 0;
    while let Some(frame) = framed.next().await {
        let ack_id = format!("KF{}", counter.fetch_add(1, Ordering::Relaxed) + 1);
        let reply = match frame {
            Ok(bytes) => answer(app, &String::from_utf8_lossy(&bytes), &ack_id).await,
            Err(MllpError::TooLong { max }) => {
                reject(app, &format!("a message longer than {max} bytes"), &ack_id)
            }
            Err(MllpError::Io(e)) => {
                tracing::info!(error = %e, "MLLP connection failed");
                break;
            }
        };
        handled += 1;
        if let Err(e) = framed.send(reply.as_bytes()).await {
            tracing::info!(error = %e, "MLLP acknowledgement not sent");
            break;
        }
    }
    handled
}

fn reject(app: &AppState, why: &str, ack_id: &str) -> String {
    let error = AckError {
        code: ErrorCode::SegmentSequence,
        location: None,
        application_code: None,
        message: format!("not a readable HL7 v2 message: {why}"),
    };
    acknowledgement(None, RECEIVER, AckCode::Reject, Some(&error), app.now(), ack_id)
}

/// The acknowledgement of one message.
pub async fn answer(app: &AppState, text: &str, ack_id: &str) -> String {
    let zone = app.zone();
    // A time without a UTC offset is the clinic's wall clock.
    let local = |t: PrimitiveDateTime| {
        let civil = format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        );
        zone.parse_local("OBX-14", &civil).ok()
    };
    let now = app.now();
    match ketaflow_hl7::parse(text, &local) {
        Ok(message) => match app.record_monitor_message(&message).await {
            Ok(outcome) => {
                tracing::info!(
                    device = %message.device,
                    control_id = %message.header.control_id,
                    ack = outcome.code.code(),
                    stored = outcome.stored,
                    "monitor message"
                );
                acknowledgement(
                    Some(&message.header),
                    RECEIVER,
                    outcome.code,
                    outcome.error.as_ref(),
                    now,
                    ack_id,
                )
            }
            Err(e) => {
                // Not the message's fault (the database, a stored record): AE, and the monitor
                // sends it again. The cause is logged; the monitor is told no more than that.
                tracing::error!(device = %message.device, control_id = %message.header.control_id, error = %e, "monitor message not stored");
                let error = AckError {
                    code: ErrorCode::Application,
                    location: None,
                    application_code: Some("INTERNAL"),
                    message: "the reading could not be stored now; nothing was stored; send it again".into(),
                };
                acknowledgement(
                    Some(&message.header),
                    RECEIVER,
                    AckCode::Error,
                    Some(&error),
                    now,
                    ack_id,
                )
            }
        },
        Err(Pcd01Error::Refused {
            header,
            code,
            location,
            message,
        }) => {
            tracing::info!(control_id = %header.control_id, error = %message, "monitor message refused");
            let error = AckError {
                code,
                location: Some(location),
                application_code: None,
                message,
            };
            let ack = if code.rejects() {
                AckCode::Reject
            } else {
                AckCode::Error
            };
            acknowledgement(Some(&header), RECEIVER, ack, Some(&error), now, ack_id)
        }
        Err(Pcd01Error::Unreadable(why)) => reject(app, &why, ack_id),
    }
}
