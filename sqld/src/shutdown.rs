//! Graceful shutdown: one signal, observed by the accept loop and by every
//! connection between messages.

use tokio::sync::watch;

/// Tells the server to stop. Dropping it does not signal.
pub struct ShutdownTrigger(watch::Sender<bool>);

/// Listens for the shutdown signal; cheap to clone into each connection.
#[derive(Clone)]
pub struct Shutdown(watch::Receiver<bool>);

pub fn channel() -> (ShutdownTrigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (ShutdownTrigger(tx), Shutdown(rx))
}

impl ShutdownTrigger {
    pub fn trigger(&self) {
        let _ = self.0.send(true);
    }
}

impl Shutdown {
    /// Completes once shutdown has been signalled (at once if it already
    /// was).
    pub async fn recv(&mut self) {
        // An error means the trigger is gone without firing: never resolve.
        if self.0.wait_for(|stop| *stop).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    pub fn is_shutdown(&self) -> bool {
        *self.0.borrow()
    }
}
