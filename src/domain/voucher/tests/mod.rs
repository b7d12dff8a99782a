//! Table-driven: one line per case. Every refusal must leave the voucher or the book
//! unchanged. This file: names, scopes, issue and status; `book.rs`: deduction, usage and
//! the life of vouchers in a book.

mod book;
use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;
use PaymentMode::AllPayment;
use ProductScope::{AllProducts, SpecifyProducts, SpecifyProductsBlacklist};

const CUSTOMER: Uin = Uin(10);
const OTHER_CUSTOMER: Uin = Uin(11);
const PARTNER: Uin = Uin(3);
const T0: Timestamp = Timestamp(0);

fn m(text: &str) -> Money {
    Money::parse(text).unwrap()
}

fn at(ms: i64) -> Timestamp {
    Timestamp(ms)
}

fn codes(list: &[&str]) -> Vec<CompactString> {
    list.iter().map(|code| CompactString::new(code)).collect()
}

fn scope(products: ProductScope, list: &[&str], payment: PaymentMode) -> Scope {
    Scope::new(products, codes(list), payment).unwrap()
}

fn anything() -> Scope {
    Scope::all_products(AllPayment)
}

fn with(mut voucher: Voucher, change: impl FnOnce(&mut Voucher)) -> Voucher {
    change(&mut voucher);
    voucher
}

/// A customer offer to `CUSTOMER`, effective from 0 until `expire`, on anything.
fn offer(id: u64, amount: &str, expire: i64) -> Voucher {
    offer_in(id, amount, expire, anything())
}

fn offer_in(id: u64, amount: &str, expire: i64, scope: Scope) -> Voucher {
    Voucher::customer_offer(VoucherId(id), CUSTOMER, PARTNER, scope, m(amount), T0, at(expire), T0).unwrap()
}

/// A partner voucher pending approval, issued at 0, on anything.
fn pending(id: u64, kind: VoucherKind, amount: &str, expire: i64) -> Voucher {
    Voucher::partner(VoucherId(id), PARTNER, kind, anything(), m(amount), at(expire), T0).unwrap()
}

fn trial_kind(customer: Uin) -> VoucherKind {
    VoucherKind::PartnerTrial { customer, associated: None }
}

/// An approved Type I.
fn general(id: u64, amount: &str, expire: i64) -> Voucher {
    with(pending(id, VoucherKind::PartnerGeneral, amount, expire), |voucher| voucher.approved = true)
}

/// The approved Type II `id + 1000` for `CUSTOMER` and its associated Type III `id`,
/// approved at 0.
fn trial_pair(id: u64, amount: &str, expire: i64) -> (Voucher, Voucher) {
    let partner_id = VoucherId(id + 1000);
    let kind = VoucherKind::PartnerTrial { customer: CUSTOMER, associated: Some(VoucherId(id)) };
    let mut partners = book(vec![pending(partner_id.0, kind, amount, expire)]);
    let mut customers = book(vec![partners.get(partner_id).unwrap().associated_trial().unwrap()]);
    assert_eq!(partners.approve(partner_id, T0), Ok(Some(VoucherId(id))));
    customers.approve_associated(VoucherId(id), T0).unwrap();
    (partners.get(partner_id).unwrap().clone(), customers.get(VoucherId(id)).unwrap().clone())
}

/// A Type III product-trial voucher of `CUSTOMER`.
fn trial(id: u64, amount: &str, expire: i64) -> Voucher {
    trial_pair(id, amount, expire).1
}

/// An approved Type II for `customer`.
fn partner_trial(id: u64, customer: Uin, amount: &str, expire: i64) -> Voucher {
    with(pending(id, trial_kind(customer), amount, expire), |voucher| voucher.approved = true)
}

fn book(vouchers: Vec<Voucher>) -> VoucherBook {
    let mut book = VoucherBook::default();
    for voucher in vouchers {
        book.add(voucher).unwrap();
    }
    book
}

fn parts(list: &[(u64, &str)]) -> Vec<(VoucherId, Money)> {
    list.iter().map(|&(id, amount)| (VoucherId(id), m(amount))).collect()
}

fn info(purchase: &PurchaseId, time: i64) -> UsageInfo<'_> {
    UsageInfo { purchase, pay: PayMode::Prepaid, product: Some("cvm"), time: at(time), customer: CUSTOMER }
}

/// Runs a refused operation; answers the refusal's reason (`VoucherUnavailable`) or name
/// (any other), after checking that the book did not change.
fn refused<T: std::fmt::Debug>(
    book: &mut VoucherBook,
    operation: impl FnOnce(&mut VoucherBook) -> Result<T, Rejection>,
) -> String {
    let before = book.clone();
    let rejection = operation(book).expect_err("the operation was accepted");
    assert_eq!(*book, before, "{rejection}: a refusal changed the book");
    match rejection {
        Rejection::VoucherUnavailable { reason, .. } => reason.to_string(),
        other => other.name().to_string(),
    }
}

#[test]
fn names_round_trip() {
    for scope in ProductScope::ALL {
        assert_eq!(ProductScope::from_name(scope.name()), Some(scope));
    }
    for mode in PaymentMode::ALL {
        assert_eq!(PaymentMode::from_name(mode.name()), Some(mode));
    }
    for mode in PayMode::ALL {
        assert_eq!(PayMode::from_name(mode.name()), Some(mode));
    }
    for status in VoucherStatus::ALL {
        assert_eq!(VoucherStatus::from_name(status.name()), Some(status));
    }
    for usage in Usage::ALL {
        assert_eq!(Usage::from_name(usage.name()), Some(usage));
    }
    assert_eq!(
        VoucherStatus::ALL.map(VoucherStatus::name),
        ["PendingApproval", "Issued", "Used", "Expired", "Invalidated"]
    );
    assert_eq!(
        ProductScope::ALL.map(ProductScope::name),
        ["AllProducts", "SpecifyProducts", "SpecifyProductsBlacklist"]
    );
    assert_eq!(PaymentMode::ALL.map(PaymentMode::name), ["AllPayment", "Prepaid", "Postpaid"]);
    assert_eq!(ProductScope::from_name("allproducts"), None);
    assert_eq!(PayMode::from_name("prePay"), None);
    assert_eq!(PayMode::default(), PayMode::Prepaid);
    assert_eq!(offer(1, "1", 10).kind.usage(), Some(Usage::CustomerOffer));
    assert_eq!(trial(1, "1", 10).kind.usage(), Some(Usage::ProductTrial));
    assert_eq!(general(1, "1", 10).kind.usage(), None);
    assert!(trial(1, "1", 10).is_trial() && partner_trial(1, CUSTOMER, "1", 10).is_trial());
    assert!(!offer(1, "1", 10).is_trial() && !general(1, "1", 10).is_trial());
}

#[test]
fn scope_validation() {
    let check = |products: ProductScope, list: &[&str], expect: Result<(), &str>| {
        let label = format!("{products:?} {list:?}");
        match (Scope::new(products, codes(list), AllPayment), expect) {
            (Ok(scope), Ok(())) => assert_eq!(scope.codes.len(), list.len(), "{label}"),
            (Err(Rejection::InvalidParameter { parameter: "ProductCodes", reason }), Err(part)) => {
                assert!(reason.contains(part), "{label}: {reason}")
            }
            (got, _) => panic!("{label}: unexpected {got:?}"),
        }
    };
    let fifty: Vec<String> = (0..50).map(|index| format!("p_{index}")).collect();
    let fifty: Vec<&str> = fifty.iter().map(String::as_str).collect();
    let fifty_one = [&fifty[..], &["p_50"]].concat();
    let (longest, too_long) = ("p".repeat(64), "p".repeat(65));
    check(AllProducts, &[], Ok(()));
    check(AllProducts, &["cvm"], Err("AllProducts takes no product codes, got 1"));
    check(SpecifyProducts, &[], Err("SpecifyProducts takes 1 to 50 product codes, got 0"));
    check(SpecifyProductsBlacklist, &[], Err("takes 1 to 50 product codes, got 0"));
    check(SpecifyProducts, &["cvm", "cbs"], Ok(()));
    check(SpecifyProductsBlacklist, &fifty, Ok(()));
    check(SpecifyProducts, &fifty_one, Err("got 51"));
    check(SpecifyProductsBlacklist, &fifty_one, Err("got 51"));
    check(SpecifyProducts, &[&longest], Ok(()));
    check(SpecifyProducts, &[&too_long], Err("1 to 64 bytes"));
    check(SpecifyProducts, &["cvm", ""], Err("1 to 64 bytes"));
    check(SpecifyProductsBlacklist, &["cvm", "cbs", "cvm"], Err("\"cvm\" is listed twice"));
}

#[test]
fn scope_covers_products_and_payment_modes() {
    use PayMode::{Postpaid, Prepaid};
    // The product rule under `AllPayment`, for a scope listing "cvm" (AllProducts lists
    // nothing): (scope, the purchase's product, covered).
    let products = [
        (AllProducts, Some("cvm"), true),
        (AllProducts, Some("cbs"), true),
        (AllProducts, None, true),
        (SpecifyProducts, Some("cvm"), true),
        (SpecifyProducts, Some("cbs"), false),
        (SpecifyProducts, None, false),
        (SpecifyProductsBlacklist, Some("cvm"), false),
        (SpecifyProductsBlacklist, Some("cbs"), true),
        (SpecifyProductsBlacklist, None, true),
    ];
    // The payment rule: (the voucher's mode, the purchase's mode, covered).
    let payments = [
        (AllPayment, Prepaid, true),
        (AllPayment, Postpaid, true),
        (PaymentMode::Prepaid, Prepaid, true),
        (PaymentMode::Prepaid, Postpaid, false),
        (PaymentMode::Postpaid, Prepaid, false),
        (PaymentMode::Postpaid, Postpaid, true),
    ];
    // Every combination is covered exactly when both rules cover it.
    for (products, product, product_covered) in products {
        for (payment, pay, pay_covered) in payments {
            let listed: &[&str] = if products == AllProducts { &[] } else { &["cvm"] };
            let covered = scope(products, listed, payment).covers(product, pay);
            assert_eq!(
                covered,
                product_covered && pay_covered,
                "{products:?} {payment:?} on {product:?} {pay:?}"
            );
        }
    }
}

#[test]
fn issue_checks_amount_and_times() {
    let offer = |amount, effective, expire| {
        Voucher::customer_offer(
            VoucherId(1),
            CUSTOMER,
            PARTNER,
            anything(),
            m(amount),
            at(effective),
            at(expire),
            at(50),
        )
        .map(|voucher| voucher.status(at(50)))
        .map_err(|rejection| rejection.name())
    };
    assert_eq!(offer("0.01", 0, 100), Ok(VoucherStatus::Issued));
    assert_eq!(offer("1000000", 0, 100), Ok(VoucherStatus::Issued));
    assert_eq!(offer("1", 60, 100), Ok(VoucherStatus::Issued), "not yet effective lists as issued");
    assert_eq!(offer("1", 0, 50), Err("InvalidParameter"), "an expiry in the past is refused");
    assert_eq!(offer("-0.01", 0, 100), Err("InvalidAmount"));
    assert!(offer("0", 0, 100).is_ok(), "the documented range is [0, 1000000]");
    assert_eq!(offer("-1", 0, 100), Err("InvalidAmount"));
    assert_eq!(offer("1000000.00000001", 0, 100), Err("InvalidAmount"));
    assert_eq!(offer("1", 100, 100), Err("InvalidParameter"));
    assert_eq!(offer("1", 101, 100), Err("InvalidParameter"));
    assert_eq!(offer("-1", 101, 100), Err("InvalidAmount"), "amounts are checked first");

    let partner = |kind, amount, expire| {
        Voucher::partner(VoucherId(1), PARTNER, kind, anything(), m(amount), at(expire), at(50))
            .map(|voucher| (voucher.status(at(50)), voucher.effective, voucher.approved))
            .map_err(|rejection| rejection.name())
    };
    let general = VoucherKind::PartnerGeneral;
    let pending = Ok((VoucherStatus::PendingApproval, at(50), false));
    assert_eq!(partner(general, "10", 51), pending);
    assert_eq!(partner(trial_kind(CUSTOMER), "1000000", 51), pending);
    assert_eq!(partner(general, "10", 50), Err("InvalidParameter"));
    assert_eq!(partner(general, "-1", 100), Err("InvalidAmount"));
    assert_eq!(partner(general, "1000001", 100), Err("InvalidAmount"));
    let associated = VoucherKind::PartnerTrial { customer: CUSTOMER, associated: Some(VoucherId(2)) };
    assert_eq!(partner(associated, "10", 100), pending, "a Type II names its Type III's id");
    assert_eq!(partner(VoucherKind::CustomerOffer { issuer: PARTNER }, "10", 100), Err("InvalidParameter"));
    let customer_trial = VoucherKind::CustomerTrial { partner_voucher: VoucherId(2) };
    assert_eq!(partner(customer_trial, "10", 100), Err("InvalidParameter"));
}

#[test]
fn status_precedence() {
    use VoucherStatus::*;
    let base = || offer(1, "10", 100);
    let check = |voucher: Voucher, now: i64, expect: VoucherStatus| {
        assert_eq!(voucher.status(at(now)), expect, "{voucher:?} at {now}");
    };
    let used = |voucher: &mut Voucher| voucher.remaining = Money::ZERO;
    let all_held = |voucher: &mut Voucher| {
        voucher.held = voucher.remaining;
        voucher.remaining = Money::ZERO;
    };
    check(base(), 50, Issued);
    check(base(), 99, Issued);
    check(base(), 100, Expired);
    check(with(base(), |voucher| voucher.effective = at(60)), 50, Issued);
    check(with(base(), used), 50, Used);
    check(with(base(), used), 100, Used);
    check(with(base(), all_held), 50, Issued);
    check(with(base(), all_held), 100, Expired);
    check(with(with(base(), used), |voucher| voucher.invalidated = true), 100, Invalidated);
    check(pending(1, VoucherKind::PartnerGeneral, "10", 100), 200, PendingApproval);
    check(with(pending(1, VoucherKind::PartnerGeneral, "10", 100), used), 50, PendingApproval);
    check(
        with(pending(1, VoucherKind::PartnerGeneral, "10", 100), |voucher| voucher.invalidated = true),
        50,
        Invalidated,
    );
}
