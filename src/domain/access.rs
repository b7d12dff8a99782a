//! Who may act on an account: the named checks that every layer calls, so that each rule of
//! authorization is written once.
//!
//! The operator (the platform) may do everything. A UIN acts on itself; a partner on its
//! direct children (the customers of a reseller or second-level reseller, the second-level
//! resellers of a distributor); a distributor also on the customers it is charged for (those
//! of its second-level resellers) where an action says so.
//!
//! Invariant: every check here reads only the caller and the relations it is given; none
//! reads state, so an account's actor and the engine decide alike.

use super::ids::{Caller, Uin};
use super::rejection::Rejection;

/// The operator, or a caller that is one of `permitted`; else `NotAuthorized` on `target`.
pub fn permit<const N: usize>(
    caller: Caller,
    target: Uin,
    permitted: [Option<Uin>; N],
) -> Result<(), Rejection> {
    match caller {
        Caller::Operator => Ok(()),
        Caller::Uin(uin) if permitted.contains(&Some(uin)) => Ok(()),
        Caller::Uin(_) => Err(not_authorized(caller, target)),
    }
}

/// The account itself, or the operator.
pub fn itself(caller: Caller, account: Uin) -> Result<(), Rejection> {
    permit(caller, account, [Some(account)])
}

/// The account's parent, or the operator.
pub fn its_parent(caller: Caller, account: Uin, parent: Option<Uin>) -> Result<(), Rejection> {
    permit(caller, account, [parent])
}

/// The account itself, its parent, or the operator.
pub fn itself_or_parent(caller: Caller, account: Uin, parent: Option<Uin>) -> Result<(), Rejection> {
    permit(caller, account, [Some(account), parent])
}

/// A customer's partners: its parent, the partner its purchases charge (the distributor of a
/// second-level reseller's customer), or the operator.
pub fn its_partners(caller: Caller, customer: Uin, parent: Uin, charged: Uin) -> Result<(), Rejection> {
    permit(caller, customer, [Some(parent), Some(charged)])
}

/// Actions only the operator takes; `what` says which, for the refusal.
pub fn operator_only(caller: Caller, what: &'static str) -> Result<(), Rejection> {
    match caller {
        Caller::Operator => Ok(()),
        Caller::Uin(_) => Err(Rejection::OperatorOnly(what)),
    }
}

/// The partner an action of a partner's own is about: the caller itself, or the partner the
/// operator names (`what` says which partner, for the refusal when the operator names none).
pub fn own_or_named(caller: Caller, named: Option<Uin>, what: &str) -> Result<Uin, Rejection> {
    match (caller, named) {
        (Caller::Operator, Some(partner)) => Ok(partner),
        (Caller::Operator, None) => Err(Rejection::InvalidParameter {
            parameter: "PartnerUin",
            reason: format!("the operator names {what}"),
        }),
        (Caller::Uin(own), None) => Ok(own),
        (Caller::Uin(own), Some(partner)) if own == partner => Ok(partner),
        (Caller::Uin(_), Some(partner)) => Err(not_authorized(caller, partner)),
    }
}

pub fn not_authorized(caller: Caller, target: Uin) -> Rejection {
    Rejection::NotAuthorized { caller: caller.to_string(), target }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OP: Caller = Caller::Operator;
    const A: Uin = Uin(1);
    const P: Uin = Uin(2);
    const D: Uin = Uin(3);
    const X: Uin = Uin(9);

    fn ok(result: Result<(), Rejection>) -> bool {
        match result {
            Ok(()) => true,
            Err(Rejection::NotAuthorized { .. } | Rejection::OperatorOnly(_)) => false,
            Err(other) => panic!("unexpected refusal {other}"),
        }
    }

    #[test]
    fn each_check_admits_exactly_its_callers() {
        // (check, operator, itself, parent, charged distributor, stranger)
        type Check = fn(Caller) -> Result<(), Rejection>;
        let table: [(&str, Check, [bool; 5]); 5] = [
            ("itself", |caller| itself(caller, A), [true, true, false, false, false]),
            ("its_parent", |caller| its_parent(caller, A, Some(P)), [true, false, true, false, false]),
            (
                "itself_or_parent",
                |caller| itself_or_parent(caller, A, Some(P)),
                [true, true, true, false, false],
            ),
            ("its_partners", |caller| its_partners(caller, A, P, D), [true, false, true, true, false]),
            ("operator_only", |caller| operator_only(caller, "test"), [true, false, false, false, false]),
        ];
        for (name, check, expected) in table {
            let callers = [OP, Caller::Uin(A), Caller::Uin(P), Caller::Uin(D), Caller::Uin(X)];
            let got = callers.map(|caller| ok(check(caller)));
            assert_eq!(got, expected, "{name}");
        }
        // An account without a parent has no one but itself and the operator.
        assert!(!ok(its_parent(Caller::Uin(X), A, None)));
    }

    #[test]
    fn own_or_named_picks_the_partner() {
        assert_eq!(own_or_named(OP, Some(P), "it"), Ok(P));
        assert_eq!(own_or_named(Caller::Uin(P), None, "it"), Ok(P));
        assert_eq!(own_or_named(Caller::Uin(P), Some(P), "it"), Ok(P));
        assert!(
            matches!(own_or_named(Caller::Uin(X), Some(P), "it"), Err(Rejection::NotAuthorized { target, .. }) if target == P)
        );
        assert!(matches!(
            own_or_named(OP, None, "the partner"),
            Err(Rejection::InvalidParameter { parameter: "PartnerUin", reason }) if reason == "the operator names the partner"
        ));
    }
}
