//! A pipe's two halves at once. As with the two ends of a Unix pipe, the
//! client may send while it waits for output and the reverse, so neither
//! half may wait for the other: both run together, and each one ending
//! tells the other (input over: stop writing after the chunk in hand;
//! output gone: stop reading).

use std::future::Future;

use tokio_util::sync::CancellationToken;

/// Runs `send` (the client's input into the topic) and `receive` (the
/// topic to the client) together. `receive` gets a token cancelled when the
/// input is over; `send` is dropped (`None`) if the output ends first.
pub async fn run_pipe<S, R, F>(send: S, receive: F) -> (Option<S::Output>, R::Output)
where
    S: Future,
    R: Future,
    F: FnOnce(CancellationToken) -> R,
{
    let input_done = CancellationToken::new();
    let output_done = CancellationToken::new();
    let sending = async {
        let r = tokio::select! {
            r = send => Some(r),
            () = output_done.cancelled() => None,
        };
        input_done.cancel();
        r
    };
    let receiving = async {
        let r = receive(input_done.clone()).await;
        output_done.cancel();
        r
    };
    tokio::join!(sending, receiving)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn input_ending_stops_the_output_and_output_ending_stops_the_input() {
        let (sent, got) = run_pipe(async { 1 }, |done| async move {
            done.cancelled().await;
            2
        })
        .await;
        assert_eq!((sent, got), (Some(1), 2));
        let (sent, got) = run_pipe(std::future::pending::<()>(), |_| async { 3 }).await;
        assert_eq!((sent, got), (None, 3));
    }
}
