//! What a load task talks to: the embedded engine, or (with the `http` feature) a server
//! over one keep-alive connection of its own. One enum, so the hot loop dispatches with a
//! match, not a boxed future.
//!
//! Every answer is classified once, here: done, refused with the API's code (the same codes
//! the server writes, from `api::errors::rejection_code`; the rejection's name when built
//! without the `http` feature), or failed.
//!
//! The HTTP branches are boxed: an HTTP request's future is a few kilobytes, and unboxed it
//! would size (and be copied into) every embedded purchase's future too.
//!
//! Invariant: a driver never retries. A failed request is reported as failed, and its
//! customer becomes uncertain in the model, because it may have been applied.

use std::sync::Arc;

use crate::coordinator::PurchaseRequest;
use crate::domain::{Action, Caller, Money, PurchaseId, Rejection, Uin};
use crate::engine::{Engine, Error};

/// One answer, classified.
#[derive(Debug)]
pub enum Answer {
    Done,
    Refused(&'static str),
    /// A code (`InternalError`, `Transport`, ...) and what went wrong.
    Failed(&'static str, String),
}

/// The code of a refusal of `action`, as the server would write it.
pub fn refusal_code(rejection: &Rejection, action: Action) -> &'static str {
    #[cfg(feature = "http")]
    {
        crate::api::errors::rejection_code(rejection, action)
    }
    #[cfg(not(feature = "http"))]
    {
        let _ = action;
        rejection.name()
    }
}

fn answer_of<T>(result: Result<T, Error>, action: Action) -> Answer {
    match result {
        Ok(_) => Answer::Done,
        Err(Error::Rejected(rejection)) => Answer::Refused(refusal_code(&rejection, action)),
        Err(Error::Failed(failure)) => Answer::Failed("InternalError", failure.to_string()),
    }
}

/// A task's way to the target.
pub enum Driver {
    Embedded(Arc<Engine>),
    #[cfg(feature = "http")]
    Http(Box<super::http::Connection>),
}

impl Driver {
    pub async fn purchase(&mut self, id: PurchaseId, customer: Uin, amount: Money) -> Answer {
        match self {
            Driver::Embedded(engine) => answer_of(
                engine.purchase(Caller::Operator, PurchaseRequest::new(id, customer, amount)).await,
                Action::CreatePurchase,
            ),
            #[cfg(feature = "http")]
            Driver::Http(connection) => Box::pin(connection.purchase(&id, customer, amount)).await,
        }
    }

    /// A batch of one-shot purchases; `answers` gets one answer per purchase, in order.
    pub async fn purchase_batch(&mut self, requests: Vec<PurchaseRequest>, answers: &mut Vec<Answer>) {
        answers.clear();
        match self {
            Driver::Embedded(engine) => {
                let count = requests.len();
                match engine.purchase_batch(Caller::Operator, requests).await {
                    Ok(results) => answers.extend(results.into_iter().map(|result| match result {
                        Ok(_) => Answer::Done,
                        Err(rejection) => Answer::Refused(refusal_code(&rejection, Action::CreatePurchase)),
                    })),
                    Err(error) => {
                        let code = match &error {
                            Error::Rejected(rejection) => refusal_code(rejection, Action::CreatePurchases),
                            Error::Failed(_) => "InternalError",
                        };
                        for _ in 0..count {
                            answers.push(match &error {
                                Error::Rejected(_) => Answer::Refused(code),
                                Error::Failed(failure) => Answer::Failed(code, failure.to_string()),
                            });
                        }
                    }
                }
            }
            #[cfg(feature = "http")]
            Driver::Http(connection) => Box::pin(connection.purchase_batch(&requests, answers)).await,
        }
    }

    /// Phase one of a purchase, held for `timeout_ms`.
    pub async fn reserve(&mut self, id: PurchaseId, customer: Uin, amount: Money, timeout_ms: i64) -> Answer {
        match self {
            Driver::Embedded(engine) => answer_of(
                engine
                    .reserve(Caller::Operator, PurchaseRequest::new(id, customer, amount), Some(timeout_ms))
                    .await,
                Action::ReservePurchase,
            ),
            #[cfg(feature = "http")]
            Driver::Http(connection) => Box::pin(connection.reserve(&id, customer, amount, timeout_ms)).await,
        }
    }

    pub async fn commit(&mut self, id: PurchaseId) -> Answer {
        match self {
            Driver::Embedded(engine) => {
                answer_of(engine.commit(Caller::Operator, id).await, Action::CommitPurchase)
            }
            #[cfg(feature = "http")]
            Driver::Http(connection) => Box::pin(connection.resolve(&id, true)).await,
        }
    }

    pub async fn cancel(&mut self, id: PurchaseId) -> Answer {
        match self {
            Driver::Embedded(engine) => {
                answer_of(engine.cancel(Caller::Operator, id).await, Action::CancelPurchase)
            }
            #[cfg(feature = "http")]
            Driver::Http(connection) => Box::pin(connection.resolve(&id, false)).await,
        }
    }

    /// AllocateCustomerCredit by `partner` (the customer's parent; the operator over HTTP,
    /// which holds no partners' keys): `delta` > 0 allocates, < 0 repossesses.
    pub async fn allocate(&mut self, partner: Uin, customer: Uin, delta: Money) -> Answer {
        match self {
            Driver::Embedded(engine) => answer_of(
                engine.allocate_customer_credit(Caller::Uin(partner), customer, delta, None).await,
                Action::AllocateCustomerCredit,
            ),
            #[cfg(feature = "http")]
            Driver::Http(connection) => {
                let _ = partner;
                Box::pin(connection.allocate(customer, delta)).await
            }
        }
    }
}
