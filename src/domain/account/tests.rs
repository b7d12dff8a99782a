//! One row per case: an account, a command, and either the available credit after it or the
//! name of the rejection. Every refusal must leave the account unchanged.

use super::*;
use crate::domain::ids::Caller;

const D: Uin = Uin(1);
const S: Uin = Uin(2);
const R: Uin = Uin(3);
const C: Uin = Uin(10);
const C_OF_S: Uin = Uin(11);
const STRANGER: Uin = Uin(99);

fn november() -> Month {
    Month::parse("2026-11").unwrap()
}

fn commit(charge: &str) -> Commit {
    Commit { charge: m(charge), month: november(), vouchers: None }
}

fn m(text: &str) -> Money {
    Money::parse(text).unwrap()
}

fn distributor() -> Account {
    let credit = PartnerCredit { total: m("1000"), allocated: m("100"), used: m("0"), reserved: m("0") };
    Account::new(D, Role::Distributor { credit }, Timestamp(0))
}

fn sub_agent() -> Account {
    let pool = PoolCredit { total: m("100"), allocated: m("40") };
    Account::new(S, Role::SecondLevelReseller { distributor: D, pool }, Timestamp(0))
}

/// Credit line 500, 200 allocated, 100 used, 50 reserved: available 350, allocable 300.
fn reseller() -> Account {
    let credit = PartnerCredit { total: m("500"), allocated: m("200"), used: m("100"), reserved: m("50") };
    Account::new(R, Role::Reseller { credit }, Timestamp(0))
}

/// Total 100, 30 used, 10 reserved: available 60.
fn customer() -> Account {
    let credit = CustomerCredit { total: m("100"), used: m("30"), reserved: m("10"), frozen: m("0") };
    Account::new(C, Role::customer(R, R, credit), Timestamp(0))
}

fn suspended_customer() -> Account {
    let mut account = customer();
    if let Role::Customer { suspended, .. } = &mut account.role {
        *suspended = true;
    }
    account
}

fn customer_of_sub_agent() -> Account {
    let credit = CustomerCredit { total: m("40"), ..Default::default() };
    Account::new(C_OF_S, Role::customer(S, D, credit), Timestamp(0))
}

fn info(operator: Caller) -> Box<RecordInfo> {
    Box::new(RecordInfo { operator, remark: None, time: Timestamp(5) })
}

fn open(caller: Caller, receiver: KindRequired, delta: &str) -> OpenAllocation {
    OpenAllocation { caller, receiver, delta: m(delta), record: info(caller) }
}

enum Expect {
    /// Accepted; the account's available credit (pool remaining, for a second-level reseller)
    /// afterwards.
    Available(&'static str),
    Refused(&'static str),
}
use Expect::{Available, Refused};

fn check(fixture: fn() -> Account, command: impl Into<Command>, expect: Expect) {
    let command = command.into();
    let mut account = fixture();
    let before = account.clone();
    let label = format!("{command:?} on {:?}", account.uin);
    let result = account.handle(command);
    match (result, expect) {
        (Ok(_), Available(want)) => assert_eq!(account.view().available(), m(want), "{label}"),
        (Err(rejection), Refused(name)) => {
            assert_eq!(rejection.name(), name, "{label}: {rejection}");
            assert_eq!(account, before, "{label}: a refusal changed the account");
        }
        (got, _) => panic!("{label}: unexpected {got:?}"),
    }
}

#[test]
fn purchase_commands() {
    // Who may reserve is the coordinator's to decide (see the ledger's tests): it authorizes
    // the caller for the customer before it records anything.
    let reserve = |amount| ReserveCustomer { amount: m(amount), now: Timestamp(0), goods: None };
    check(customer, reserve("60"), Available("0"));
    check(customer, reserve("0.01"), Available("59.99"));
    check(customer, reserve("60.00000001"), Refused("InsufficientCustomerCredit"));
    check(suspended_customer, reserve("1"), Refused("Suspended"));
    check(suspended_customer, reserve("1000"), Refused("Suspended"));
    check(reseller, reserve("1"), Refused("WrongKind"));

    let partner = |amount, commit| ReservePartner {
        amount: m(amount),
        commit,
        customer: C,
        now: Timestamp(0),
        month: november(),
        goods: None,
    };
    check(reseller, partner("350", false), Available("0"));
    check(reseller, partner("350", true), Available("0"));
    check(reseller, partner("350.01", false), Refused("InsufficientPartnerCredit"));
    check(distributor, partner("1000", true), Available("0"));
    check(sub_agent, partner("1", false), Refused("WrongKind"));
    check(customer, partner("1", false), Refused("WrongKind"));

    check(customer, commit("10"), Available("60"));
    check(customer, Release { charge: m("10"), vouchers: None }, Available("70"));
    check(reseller, commit("50"), Available("350"));
    check(reseller, Release { charge: m("50"), vouchers: None }, Available("400"));
    check(sub_agent, commit("1"), Refused("WrongKind"));
}

#[test]
#[should_panic(expected = "exceeds its reserved")]
fn committing_more_than_reserved_is_a_bug() {
    let _ = customer().handle(commit("10.01"));
}

#[test]
fn allocation_commands() {
    let op = Caller::Operator;
    let by_r = Caller::Uin(R);
    // At the receiver: positive allocations wait for the giver; repossessions apply here.
    check(customer, open(by_r, KindRequired::Customer, "5"), Available("60"));
    check(customer, open(op, KindRequired::Customer, "-60"), Available("0"));
    check(customer, open(by_r, KindRequired::Customer, "-60.01"), Refused("OverRepossessable"));
    check(customer, open(by_r, KindRequired::Customer, "0"), Refused("InvalidAmount"));
    check(customer, open(Caller::Uin(STRANGER), KindRequired::Customer, "5"), Refused("NotAuthorized"));
    check(customer, open(Caller::Uin(C), KindRequired::Customer, "5"), Refused("NotAuthorized"));
    check(customer, open(by_r, KindRequired::SecondLevelReseller, "5"), Refused("WrongKind"));
    // The kind comes before authorization (see the order of refusals in `rejection`).
    check(
        customer,
        open(Caller::Uin(STRANGER), KindRequired::SecondLevelReseller, "5"),
        Refused("WrongKind"),
    );
    check(reseller, open(Caller::Uin(STRANGER), KindRequired::Customer, "5"), Refused("WrongKind"));
    check(customer, open(Caller::Uin(STRANGER), KindRequired::Customer, "-1000"), Refused("NotAuthorized"));
    check(customer_of_sub_agent, open(Caller::Uin(S), KindRequired::Customer, "-40"), Available("0"));
    check(customer_of_sub_agent, open(Caller::Uin(D), KindRequired::Customer, "1"), Refused("NotAuthorized"));
    check(sub_agent, open(Caller::Uin(D), KindRequired::SecondLevelReseller, "-60"), Available("0"));
    check(
        sub_agent,
        open(Caller::Uin(D), KindRequired::SecondLevelReseller, "-61"),
        Refused("OverRepossessable"),
    );
    check(sub_agent, open(Caller::Uin(R), KindRequired::SecondLevelReseller, "1"), Refused("NotAuthorized"));

    // At the giver.
    let take = |credit| TakeAllocable { credit: m(credit) };
    check(reseller, take("300"), Available("350"));
    check(reseller, take("300.00000001"), Refused("OverAllocable"));
    check(sub_agent, take("60"), Available("0"));
    check(sub_agent, take("60.5"), Refused("OverAllocable"));
    check(customer, take("1"), Refused("WrongKind"));
    check(reseller, ReturnAllocable { credit: m("200") }, Available("350"));

    // The arrival.
    let close = |delta| CloseAllocation { delta: m(delta), record: info(Caller::Uin(R)) };
    check(customer, close("5"), Available("65"));
    check(sub_agent, close("5"), Available("65"));
    check(reseller, close("5"), Refused("WrongKind"));
}

#[test]
fn credit_line_commands() {
    let grant = |delta| GrantCredit { delta: m(delta), record: info(Caller::Operator) };
    check(reseller, grant("100"), Available("450"));
    // A reduction may take allocable below zero but never available.
    check(reseller, grant("-350"), Available("0"));
    check(reseller, grant("-350.01"), Refused("OverRepossessable"));
    check(customer, grant("1"), Refused("WrongKind"));
    check(sub_agent, grant("1"), Refused("WrongKind"));
}

#[test]
fn suspension_and_remark_commands() {
    let suspend = |caller, suspended| SetSuspension { caller, suspended };
    check(customer, suspend(Caller::Uin(R), true), Available("60"));
    check(suspended_customer, suspend(Caller::Operator, false), Available("60"));
    check(customer, suspend(Caller::Uin(C), true), Refused("NotAuthorized"));
    check(customer, suspend(Caller::Uin(STRANGER), true), Refused("NotAuthorized"));
    check(reseller, suspend(Caller::Operator, true), Refused("WrongKind"));
    check(reseller, suspend(Caller::Uin(STRANGER), true), Refused("WrongKind"));
    check(sub_agent, suspend(Caller::Uin(D), true), Refused("WrongKind"));
    let remark = |caller| SetRemark { caller, remark: "vip".into() };
    check(customer, remark(Caller::Uin(R)), Available("60"));
    check(customer, remark(Caller::Uin(STRANGER)), Refused("NotAuthorized"));
    check(reseller, remark(Caller::Uin(STRANGER)), Refused("WrongKind"));
}

#[test]
fn adoption_commands() {
    let adopt = |kind| AdoptChild { child: Uin(50), child_kind: kind };
    let charged =
        |fixture: fn() -> Account, kind| fixture().ask(adopt(kind)).map_err(|rejection| rejection.name());
    assert_eq!(charged(reseller, AccountKind::Customer), Ok(R));
    assert_eq!(
        charged(sub_agent, AccountKind::Customer),
        Ok(D),
        "a second-level reseller's customers charge its distributor"
    );
    assert_eq!(charged(distributor, AccountKind::SecondLevelReseller), Ok(D));
    assert_eq!(charged(distributor, AccountKind::Customer), Err("WrongKind"));
    assert_eq!(charged(reseller, AccountKind::SecondLevelReseller), Err("WrongKind"));
    assert_eq!(charged(customer, AccountKind::Customer), Err("WrongKind"));
}

#[test]
fn history_is_newest_first_and_bounded() {
    let mut account = customer();
    for cents in 1..=3 {
        let record = info(Caller::Uin(R));
        account.handle(CloseAllocation { delta: Money::from_cents(cents), record }).unwrap();
    }
    let HistoryPage { total, records } = account.ask(History { page: 1, page_size: 2 }).unwrap();
    assert_eq!(total, 3);
    let amounts: Vec<Money> = records.iter().map(|record| record.amount).collect();
    assert_eq!(amounts, vec![Money::from_cents(3), Money::from_cents(2)]);
    assert_eq!(records[0].total_after, m("100.06"));
    assert_eq!(records[0].available_after, m("60.06"));

    for _ in 0..Account::HISTORY_MAX {
        account
            .handle(CloseAllocation { delta: Money::from_cents(1), record: info(Caller::Operator) })
            .unwrap();
    }
    assert_eq!(account.history().len(), Account::HISTORY_MAX);
}

#[test]
fn disowning_removes_one_adoption() {
    let mut account = reseller();
    for _ in 0..2 {
        account.handle(AdoptChild { child: Uin(50), child_kind: AccountKind::Customer }).unwrap();
    }
    account.handle(DisownChild { child: Uin(50) }).unwrap();
    assert_eq!(account.children(), &[Uin(50)]);
}

fn frozen_customer() -> Account {
    let mut account = customer();
    let freeze = Freeze { resource: "kept".into(), frozen: m("20") };
    account.handle(freeze).unwrap();
    account
}

#[test]
fn freezing_bounds() {
    // Who may freeze is the engine's to decide, before it claims the resource id.
    let freeze = |resource: &str, frozen| Freeze { resource: resource.into(), frozen: m(frozen) };
    let unfreeze = |caller, resource: &str| Unfreeze { caller, resource: resource.into() };
    let op = Caller::Operator;
    // The customer (60 available), then 40 of it left once "kept" froze 20.
    check(customer, freeze("a", "60"), Available("0"));
    check(customer, freeze("a", "60.00000001"), Refused("InsufficientCustomerCredit"));
    check(customer, freeze("a", "0"), Available("60"));
    check(customer, freeze("a", "-1"), Refused("InvalidAmount"));
    check(customer, freeze("a", "1"), Available("59"));
    check(reseller, freeze("a", "1"), Refused("WrongKind"));
    check(frozen_customer, freeze("a", "40"), Available("0"));
    check(frozen_customer, freeze("a", "40.01"), Refused("InsufficientCustomerCredit"));
    check(frozen_customer, freeze("kept", "1"), Refused("ResourceTaken"));
    check(frozen_customer, unfreeze(op, "kept"), Available("60"));
    check(frozen_customer, unfreeze(Caller::Uin(C), "kept"), Available("60"));
    check(frozen_customer, unfreeze(Caller::Uin(R), "kept"), Available("60"));
    check(frozen_customer, unfreeze(Caller::Uin(STRANGER), "kept"), Refused("NotAuthorized"));
    check(reseller, unfreeze(Caller::Uin(STRANGER), "kept"), Refused("WrongKind"));
    check(frozen_customer, unfreeze(op, "other"), Refused("UnknownResource"));
    check(customer, unfreeze(op, "kept"), Refused("UnknownResource"));
    // Frozen credit is not available to purchases.
    let reserve = ReserveCustomer { amount: m("40.01"), now: Timestamp(0), goods: None };
    check(frozen_customer, reserve, Refused("InsufficientCustomerCredit"));
}

#[test]
fn active_resources_are_bounded() {
    let mut account = customer();
    for index in 0..Account::FROZEN_MAX {
        let freeze = Freeze { resource: format!("r{index}").into(), frozen: m("0") };
        account.handle(freeze).unwrap();
    }
    let one_more = Freeze { resource: "last".into(), frozen: m("0") };
    assert_eq!(account.handle(one_more).unwrap_err().name(), "TooMany");
}
