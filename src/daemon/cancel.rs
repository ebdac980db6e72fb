//! A request to stop work that is going (a release rolling out, a job run), with why: the
//! work waits on [`Cancel::requested`] beside what it does, [`Canceller::cancel`] asks.

use tokio::sync::watch;

/// A cancel and the handle that asks for it.
pub fn pair() -> (Canceller, Cancel) {
    let (ask, requested) = watch::channel(None);
    (Canceller(ask), Cancel { requested })
}

/// Asks the work its [`Cancel`] belongs to to stop.
pub struct Canceller(watch::Sender<Option<String>>);

impl Canceller {
    /// Asks, saying `why`; a second ask replaces the reason.
    pub fn cancel(&self, why: &str) {
        self.0.send_replace(Some(why.to_string()));
    }
}

/// What the work waits on.
#[derive(Clone)]
pub struct Cancel {
    requested: watch::Receiver<Option<String>>,
}

impl Cancel {
    /// A cancel that never comes (scaling, `apps restart`: not releases).
    pub fn never() -> Self {
        pair().1
    }

    /// Why the work was cancelled, if it was.
    pub fn reason(&self) -> Option<String> {
        self.requested.borrow().clone()
    }

    /// Waits until the work is cancelled and says why; pends for ever if it never is.
    pub async fn requested(&mut self) -> String {
        loop {
            if let Some(why) = self.requested.borrow_and_update().clone() {
                return why;
            }
            if self.requested.changed().await.is_err() {
                // No one can cancel any more.
                std::future::pending::<()>().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_cancel_is_seen_once_asked_and_never_without_an_ask() {
        let (canceller, mut cancel) = pair();
        assert_eq!(cancel.reason(), None);
        let waiting = tokio::spawn(async move { cancel.requested().await });
        canceller.cancel("why");
        assert_eq!(waiting.await.unwrap(), "why");
        // The asker gone without asking: the wait pends rather than ends.
        let mut never = Cancel::never();
        let waited = tokio::time::timeout(std::time::Duration::from_millis(20), never.requested());
        assert!(waited.await.is_err());
    }
}
