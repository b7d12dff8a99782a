//! The book: deduction order, hold, settle and release, withdrawal, invalidation, approval
//! and bounds; and a property test of conservation.

use super::*;

/// One purchase's voucher parameters.
#[derive(Clone, Copy)]
struct Purchase {
    amount: &'static str,
    product: Option<&'static str>,
    pay: PayMode,
    customer: Uin,
    now: i64,
    trial_first: bool,
}

const BUY: Purchase = Purchase {
    amount: "10",
    product: Some("cvm"),
    pay: PayMode::Prepaid,
    customer: CUSTOMER,
    now: 10,
    trial_first: true,
};

/// Holds `purchase` on a book of `vouchers`: the deductions are `expect`, each voucher gave
/// exactly its deduction from remaining to held, and holding nothing allocated nothing.
fn check_hold(vouchers: Vec<Voucher>, purchase: Purchase, expect: &[(u64, &str)]) {
    let mut book = book(vouchers);
    let before = book.clone();
    let Purchase { amount, product, pay, customer, now, trial_first } = purchase;
    let deductions = book.hold(m(amount), product, pay, customer, at(now), trial_first);
    let label =
        format!("hold {amount} of {product:?} {pay:?} by {customer} at {now}, trial first {trial_first}");
    assert_eq!(deductions.parts, parts(expect), "{label}");
    assert!(deductions.total() <= m(amount), "{label}");
    if deductions.is_empty() {
        assert_eq!(deductions.parts.capacity(), 0, "{label}: holding nothing allocated");
        assert_eq!(book, before, "{label}: holding nothing changed the book");
    }
    for (voucher, old) in book.iter().zip(before.iter()) {
        let deducted: Money =
            deductions.parts.iter().filter(|(id, _)| *id == voucher.id).map(|&(_, amount)| amount).sum();
        assert_eq!(voucher.remaining, old.remaining - deducted, "{label}: {:?}", voucher.id);
        assert_eq!(voucher.held, old.held + deducted, "{label}: {:?}", voucher.id);
    }
}

#[test]
fn deduction_order() {
    // Offers 1 (expires at 300), 2 and 4 (both at 200), and the trial 3 (at 400).
    let customer_book =
        || vec![offer(1, "10", 300), offer(2, "10", 200), trial(3, "10", 400), offer(4, "10", 200)];
    let all_four = [(3, "10"), (2, "10"), (4, "10"), (1, "10")];
    check_hold(customer_book(), Purchase { amount: "40", ..BUY }, &all_four);
    check_hold(
        customer_book(),
        Purchase { amount: "40", trial_first: false, ..BUY },
        &[(2, "10"), (4, "10"), (1, "10"), (3, "10")],
    );
    check_hold(customer_book(), Purchase { amount: "15", ..BUY }, &[(3, "10"), (2, "5")]);
    check_hold(customer_book(), Purchase { amount: "15", trial_first: false, ..BUY }, &[(2, "10"), (4, "5")]);
    check_hold(customer_book(), Purchase { amount: "0.00000001", ..BUY }, &[(3, "0.00000001")]);
    check_hold(customer_book(), Purchase { amount: "100", ..BUY }, &all_four);
    check_hold(customer_book(), Purchase { amount: "0", ..BUY }, &[]);
    // Equal expiry: the lowest id first, among trials too.
    check_hold(
        vec![trial(7, "1", 400), trial(6, "1", 400)],
        Purchase { amount: "2", ..BUY },
        &[(6, "1"), (7, "1")],
    );
    // Partial deductions across vouchers of different sizes.
    check_hold(
        vec![offer(1, "3.5", 300), offer(2, "1.25", 200)],
        Purchase { amount: "4", ..BUY },
        &[(2, "1.25"), (1, "2.75")],
    );
    check_hold(
        vec![offer(1, "3.5", 300), offer(2, "1.25", 200)],
        Purchase { amount: "4.75", ..BUY },
        &[(2, "1.25"), (1, "3.5")],
    );
    check_hold(
        vec![offer(1, "3.5", 300), offer(2, "1.25", 200)],
        Purchase { amount: "5", ..BUY },
        &[(2, "1.25"), (1, "3.5")],
    );
    check_hold(vec![], BUY, &[]);

    // A partner's book: the Type II of the purchase's customer first, when the switch is on.
    let partner_book = || {
        vec![
            general(1, "10", 100),
            partner_trial(2, CUSTOMER, "10", 500),
            partner_trial(3, OTHER_CUSTOMER, "10", 50),
        ]
    };
    check_hold(partner_book(), Purchase { amount: "30", ..BUY }, &[(2, "10"), (1, "10")]);
    check_hold(partner_book(), Purchase { amount: "30", trial_first: false, ..BUY }, &[(1, "10"), (2, "10")]);
    check_hold(
        partner_book(),
        Purchase { amount: "30", customer: OTHER_CUSTOMER, ..BUY },
        &[(3, "10"), (1, "10")],
    );
    check_hold(
        partner_book(),
        Purchase { amount: "30", customer: OTHER_CUSTOMER, trial_first: false, ..BUY },
        &[(3, "10"), (1, "10")],
    );
}

#[test]
fn deduction_order_beyond_the_stack_buffer() {
    // 40 usable vouchers (more than HOLD_INLINE), expiring in the opposite order of their ids.
    let vouchers: Vec<Voucher> = (1..=40).map(|id| offer(id, "1", 1000 - id as i64)).collect();
    let expect: Vec<(u64, &str)> = (1..=40).rev().map(|id| (id, "1")).collect();
    check_hold(vouchers.clone(), Purchase { amount: "40", ..BUY }, &expect);
    check_hold(
        vouchers.clone(),
        Purchase { amount: "17.5", ..BUY },
        &[&expect[..17], &[(23, "0.5")]].concat(),
    );
    // Trials first, also when the candidates spill.
    let mut vouchers = vouchers;
    vouchers.push(trial(50, "1", 2000));
    check_hold(vouchers, Purchase { amount: "2", ..BUY }, &[(50, "1"), (40, "1")]);
}

#[test]
fn unusable_vouchers_are_skipped() {
    use PayMode::Postpaid;
    let all = [(1, "10")];
    let none = [];
    let offer_from = |effective: i64| with(offer(1, "10", 100), |voucher| voucher.effective = at(effective));
    check_hold(vec![offer(1, "10", 100)], BUY, &all);
    check_hold(vec![general(1, "10", 100)], BUY, &all);
    check_hold(vec![pending(1, VoucherKind::PartnerGeneral, "10", 100)], BUY, &none);
    check_hold(vec![pending(1, trial_kind(CUSTOMER), "10", 100)], BUY, &none);
    check_hold(vec![with(offer(1, "10", 100), |voucher| voucher.invalidated = true)], BUY, &none);
    check_hold(vec![with(general(1, "10", 100), |voucher| voucher.invalidated = true)], BUY, &none);
    check_hold(vec![offer_from(11)], BUY, &none);
    check_hold(vec![offer_from(10)], BUY, &all);
    check_hold(vec![offer(1, "10", 10)], BUY, &none);
    check_hold(vec![offer(1, "10", 11)], BUY, &all);
    check_hold(vec![with(offer(1, "10", 100), |voucher| voucher.remaining = Money::ZERO)], BUY, &none);
    let only_cbs = || offer_in(1, "10", 100, scope(SpecifyProducts, &["cbs"], AllPayment));
    check_hold(vec![only_cbs()], BUY, &none);
    check_hold(vec![only_cbs()], Purchase { product: None, ..BUY }, &none);
    check_hold(vec![only_cbs()], Purchase { product: Some("cbs"), ..BUY }, &all);
    let not_cvm = || offer_in(1, "10", 100, scope(SpecifyProductsBlacklist, &["cvm"], AllPayment));
    check_hold(vec![not_cvm()], BUY, &none);
    check_hold(vec![not_cvm()], Purchase { product: None, ..BUY }, &all);
    let prepaid = || offer_in(1, "10", 100, Scope::all_products(PaymentMode::Prepaid));
    check_hold(vec![prepaid()], Purchase { pay: Postpaid, ..BUY }, &none);
    let postpaid = || offer_in(1, "10", 100, Scope::all_products(PaymentMode::Postpaid));
    check_hold(vec![postpaid()], Purchase { pay: Postpaid, ..BUY }, &all);
    check_hold(vec![postpaid()], BUY, &none);
    check_hold(vec![partner_trial(1, OTHER_CUSTOMER, "10", 100)], BUY, &none);
    check_hold(vec![partner_trial(1, CUSTOMER, "10", 100)], BUY, &all);
    // Only the usable one of several gives.
    let mixed = vec![
        pending(1, VoucherKind::PartnerGeneral, "10", 100),
        partner_trial(2, OTHER_CUSTOMER, "10", 100),
        offer(3, "10", 10),
        only_cbs_with_id(4),
        offer(5, "10", 100),
    ];
    check_hold(mixed, Purchase { amount: "50", ..BUY }, &[(5, "10")]);
}

fn only_cbs_with_id(id: u64) -> Voucher {
    offer_in(id, "10", 100, scope(SpecifyProducts, &["cbs"], AllPayment))
}

#[test]
fn settle_records_usage_and_uses_up() {
    let mut book = book(vec![offer(1, "10", 100), offer(2, "5", 50)]);
    let first = PurchaseId::new("p-1").unwrap();
    let deductions = book.hold(m("12"), None, PayMode::Postpaid, CUSTOMER, at(10), true);
    assert_eq!(deductions.parts, parts(&[(2, "5"), (1, "7")]));
    assert_eq!(deductions.total(), m("12"));
    let usage = UsageInfo {
        purchase: &first,
        pay: PayMode::Postpaid,
        product: None,
        time: at(11),
        customer: CUSTOMER,
    };
    book.settle(&deductions, &usage);

    let record = |log_id, purchase: &PurchaseId, amount, pay, product: Option<&str>, time| UsageRecord {
        log_id,
        purchase: purchase.clone(),
        amount: m(amount),
        pay,
        product: product.map(CompactString::new),
        time: at(time),
        customer: CUSTOMER,
    };
    let used_up = book.get(VoucherId(2)).unwrap();
    assert_eq!((used_up.remaining, used_up.held), (Money::ZERO, Money::ZERO));
    assert_eq!(used_up.status(at(11)), VoucherStatus::Used);
    assert_eq!(used_up.usage_count(), 1);
    assert_eq!(
        used_up.usage().iter().collect::<Vec<_>>(),
        [&record(1, &first, "5", PayMode::Postpaid, None, 11)]
    );
    let partly = book.get(VoucherId(1)).unwrap();
    assert_eq!((partly.remaining, partly.held), (m("3"), Money::ZERO));
    assert_eq!(partly.status(at(11)), VoucherStatus::Issued);
    assert_eq!(
        partly.usage().iter().collect::<Vec<_>>(),
        [&record(2, &first, "7", PayMode::Postpaid, None, 11)]
    );

    // Log ids keep increasing across purchases; the book's remaining total follows.
    let second = PurchaseId::new("p-2").unwrap();
    let deductions = book.hold(m("1"), Some("cvm"), PayMode::Prepaid, CUSTOMER, at(12), true);
    book.settle(&deductions, &info(&second, 13));
    let partly = book.get(VoucherId(1)).unwrap();
    assert_eq!(partly.usage().back(), Some(&record(3, &second, "1", PayMode::Prepaid, Some("cvm"), 13)));
    assert_eq!(partly.usage_count(), 2);
    assert_eq!(book.remaining_total(at(13)), m("2"));
    assert_eq!(book.remaining_total(at(100)), Money::ZERO);
    // An empty settle or release does nothing.
    let before = book.clone();
    book.settle(&Deductions::default(), &info(&second, 14));
    book.release(&Deductions::default());
    assert_eq!(book, before);
}

#[test]
fn release_restores() {
    let mut book = book(vec![offer(1, "10", 100), trial(2, "5", 50)]);
    let before = book.clone();
    let first = book.hold(m("7"), Some("cvm"), PayMode::Prepaid, CUSTOMER, at(10), true);
    let second = book.hold(m("7"), Some("cvm"), PayMode::Prepaid, CUSTOMER, at(10), true);
    assert_eq!(first.parts, parts(&[(2, "5"), (1, "2")]));
    assert_eq!(second.parts, parts(&[(1, "7")]));
    assert_eq!(book.remaining_total(at(10)), m("1"));
    book.release(&second);
    book.release(&first);
    assert_eq!(book, before);
    // Released after expiry: the amount is back in remaining, though no longer usable.
    let held = book.hold(m("3"), Some("cvm"), PayMode::Prepaid, CUSTOMER, at(10), true);
    book.release(&held);
    assert_eq!(book, before);
    assert!(book.hold(m("1"), Some("cvm"), PayMode::Prepaid, CUSTOMER, at(100), true).is_empty());
}

#[test]
#[should_panic(expected = "cannot settle or release")]
fn settling_more_than_held_is_a_bug() {
    let mut book = book(vec![offer(1, "10", 100)]);
    let purchase = PurchaseId::new("p").unwrap();
    let _ = book.hold(m("1"), None, PayMode::Prepaid, CUSTOMER, at(10), true);
    book.settle(&Deductions { parts: parts(&[(1, "1.01")]) }, &info(&purchase, 11));
}

#[test]
#[should_panic(expected = "cannot settle or release")]
fn releasing_twice_is_a_bug() {
    let mut book = book(vec![offer(1, "10", 100)]);
    let held = book.hold(m("1"), None, PayMode::Prepaid, CUSTOMER, at(10), true);
    book.release(&held);
    book.release(&held);
}

#[test]
#[should_panic(expected = "is not in the book")]
fn settling_on_a_missing_voucher_is_a_bug() {
    let purchase = PurchaseId::new("p").unwrap();
    VoucherBook::default().settle(&Deductions { parts: parts(&[(1, "1")]) }, &info(&purchase, 11));
}

#[test]
fn withdrawal() {
    let check = |voucher: Voucher, now: i64, expect: Result<(), &str>| {
        let id = voucher.id;
        let mut book = book(vec![voucher]);
        let label = format!("withdraw {:?} at {now}", book.get(id).unwrap());
        match expect {
            Ok(()) => {
                let before = book.get(id).unwrap().clone();
                assert_eq!(book.withdraw(id, at(now)), Ok(()), "{label}");
                assert_eq!(*book.get(id).unwrap(), Voucher { invalidated: true, ..before }, "{label}");
                assert_eq!(book.get(id).unwrap().status(at(now)), VoucherStatus::Invalidated, "{label}");
            }
            Err(reason) => {
                assert_eq!(refused(&mut book, |book| book.withdraw(id, at(now))), reason, "{label}")
            }
        }
    };
    let partly_used = |voucher: &mut Voucher| voucher.remaining = m("4");
    let all_held = |voucher: &mut Voucher| {
        voucher.held = voucher.remaining;
        voucher.remaining = Money::ZERO;
    };
    let used = |voucher: &mut Voucher| voucher.remaining = Money::ZERO;
    check(offer(1, "10", 100), 50, Ok(()));
    check(offer(1, "10", 100), 99, Ok(()));
    check(with(offer(1, "10", 100), partly_used), 50, Ok(()));
    check(with(offer(1, "10", 100), all_held), 50, Ok(()));
    check(with(offer(1, "10", 100), |voucher| voucher.effective = at(60)), 50, Ok(()));
    check(trial(1, "10", 100), 50, Err("is a product trial voucher: invalidate its partner voucher instead"));
    check(general(1, "10", 100), 50, Err("is a partner voucher: invalidate it instead"));
    check(
        pending(1, trial_kind(CUSTOMER), "10", 100),
        50,
        Err("is a partner voucher: invalidate it instead"),
    );
    check(with(offer(1, "10", 100), |voucher| voucher.invalidated = true), 50, Err("is already withdrawn"));
    check(with(offer(1, "10", 100), used), 50, Err("is used up"));
    check(with(offer(1, "10", 100), used), 100, Err("is used up"));
    check(offer(1, "10", 100), 100, Err("has expired"));
    check(with(offer(1, "10", 100), all_held), 100, Err("has expired"));
    let mut empty = VoucherBook::default();
    assert_eq!(refused(&mut empty, |book| book.withdraw(VoucherId(1), T0)), "UnknownVoucher");
}

#[test]
fn held_amounts_settle_and_release_after_withdrawal() {
    let mut book = book(vec![offer(1, "10", 100), offer(2, "10", 200)]);
    let purchase = PurchaseId::new("p").unwrap();
    let hold =
        |book: &mut VoucherBook, amount| book.hold(m(amount), None, PayMode::Prepaid, CUSTOMER, at(10), true);
    let first = hold(&mut book, "4");
    let second = hold(&mut book, "3");
    book.withdraw(VoucherId(1), at(10)).unwrap();
    assert_eq!(hold(&mut book, "1").parts, parts(&[(2, "1")]), "a withdrawn voucher gives nothing more");
    book.settle(&first, &info(&purchase, 11));
    book.release(&second);
    let withdrawn = book.get(VoucherId(1)).unwrap();
    assert_eq!((withdrawn.remaining, withdrawn.held, withdrawn.usage_count()), (m("6"), Money::ZERO, 1));
    assert_eq!(withdrawn.usage()[0].amount, m("4"));
    assert_eq!(withdrawn.status(at(11)), VoucherStatus::Invalidated);
    assert_eq!(book.remaining_total(at(11)), m("9"), "a withdrawn voucher's remaining does not count");
}

#[test]
fn invalidation() {
    let (partner_voucher, customer_voucher) = trial_pair(5, "10", 100);
    let mut partners = book(vec![
        general(1, "10", 100),
        pending(2, VoucherKind::PartnerGeneral, "10", 100),
        pending(3, trial_kind(CUSTOMER), "10", 100),
        partner_voucher,
    ]);
    let mut customers = book(vec![customer_voucher, offer(7, "10", 100)]);
    let held = customers.hold(m("4"), None, PayMode::Prepaid, CUSTOMER, at(10), true);
    assert_eq!(held.parts, parts(&[(5, "4")]));

    assert_eq!(partners.invalidate(VoucherId(1005)), Ok(Some(VoucherId(5))));
    assert_eq!(customers.invalidate_associated(VoucherId(5)), Ok(()));
    let before = customers.clone();
    assert_eq!(customers.invalidate_associated(VoucherId(5)), Ok(()), "idempotent");
    assert_eq!(customers, before);
    assert_eq!(partners.get(VoucherId(1005)).unwrap().status(at(10)), VoucherStatus::Invalidated);
    assert_eq!(customers.get(VoucherId(5)).unwrap().status(at(10)), VoucherStatus::Invalidated);
    assert_eq!(
        customers.hold(m("4"), None, PayMode::Prepaid, CUSTOMER, at(10), true).parts,
        parts(&[(7, "4")])
    );
    // What the trial voucher held before still releases.
    customers.release(&held);
    assert_eq!(customers.get(VoucherId(5)).unwrap().remaining, m("10"));

    assert_eq!(partners.invalidate(VoucherId(1)), Ok(None), "an approved Type I");
    assert_eq!(partners.invalidate(VoucherId(2)), Ok(None), "a pending Type I");
    assert_eq!(partners.invalidate(VoucherId(3)), Ok(None), "a pending Type II has no customer voucher yet");
    assert_eq!(refused(&mut partners, |book| book.invalidate(VoucherId(1005))), "is already invalidated");
    assert_eq!(refused(&mut partners, |book| book.invalidate(VoucherId(9))), "UnknownVoucher");
    assert_eq!(
        refused(&mut customers, |book| book.invalidate(VoucherId(7))),
        "is a customer voucher: withdraw it instead"
    );
    assert_eq!(
        refused(&mut customers, |book| book.invalidate(VoucherId(5))),
        "is a product trial voucher: invalidate its partner voucher instead"
    );
    assert_eq!(
        refused(&mut customers, |book| book.invalidate_associated(VoucherId(7))),
        "is not a product trial customer voucher"
    );
    assert_eq!(refused(&mut customers, |book| book.invalidate_associated(VoucherId(9))), "UnknownVoucher");
    // A used-up partner voucher can still be invalidated (and expiry does not matter).
    let mut used_up = book(vec![with(general(1, "10", 100), |voucher| voucher.remaining = Money::ZERO)]);
    assert_eq!(used_up.invalidate(VoucherId(1)), Ok(None));
}

#[test]
fn approval() {
    let trial_kind_77 = VoucherKind::PartnerTrial { customer: CUSTOMER, associated: Some(VoucherId(77)) };
    let mut partners = book(vec![
        pending(1, VoucherKind::PartnerGeneral, "10", 100),
        pending(2, trial_kind_77, "7.5", 100),
        pending(3, VoucherKind::PartnerGeneral, "1", 100),
        with(pending(4, VoucherKind::PartnerGeneral, "1", 100), |voucher| voucher.invalidated = true),
        offer(5, "1", 100),
        trial(6, "1", 100),
    ]);
    assert_eq!(partners.approve(VoucherId(1), at(20)), Ok(None));
    let approved = partners.get(VoucherId(1)).unwrap();
    assert!(approved.approved);
    assert_eq!((approved.effective, approved.created), (at(20), T0));
    assert_eq!(approved.status(at(20)), VoucherStatus::Issued);
    assert!(approved.usable(at(20), None, PayMode::Prepaid, OTHER_CUSTOMER));
    assert!(!approved.usable(at(19), None, PayMode::Prepaid, OTHER_CUSTOMER), "valid from approval");

    // The Type III exists, pending, from the application on.
    let associated = partners.get(VoucherId(2)).unwrap().associated_trial().unwrap();
    let expect = Voucher {
        id: VoucherId(77),
        owner: CUSTOMER,
        kind: VoucherKind::CustomerTrial { partner_voucher: VoucherId(2) },
        scope: anything(),
        total: m("7.5"),
        remaining: m("7.5"),
        held: Money::ZERO,
        effective: T0,
        expire: at(100),
        approved: false,
        invalidated: false,
        created: T0,
        usage: VecDeque::new(),
        usage_count: 0,
    };
    assert_eq!(associated, expect);
    assert_eq!(associated.status(at(30)), VoucherStatus::PendingApproval);
    assert_eq!(partners.approve(VoucherId(2), at(30)), Ok(Some(VoucherId(77))));
    assert_eq!(partners.get(VoucherId(2)).unwrap().effective, at(30));
    let mut customers = book(vec![associated]);
    customers.approve_associated(VoucherId(77), at(30)).unwrap();
    let approved = customers.get(VoucherId(77)).unwrap();
    assert_eq!((approved.status(at(30)), approved.effective), (VoucherStatus::Issued, at(30)));
    assert_eq!(customers.approve_associated(VoucherId(77), at(31)), Ok(()), "twice is no error");
    // Invalidation is final: a Type III invalidated before its approval stays so.
    let mut invalidated = book(vec![with(expect.clone(), |voucher| voucher.invalidated = true)]);
    assert_eq!(
        refused(&mut invalidated, |book| book.approve_associated(VoucherId(77), at(30))),
        "is invalidated"
    );
    assert_eq!(
        refused(&mut partners, |book| book.approve_associated(VoucherId(1), at(30))),
        "is not a product trial customer voucher"
    );

    assert_eq!(refused(&mut partners, |book| book.approve(VoucherId(1), at(21))), "is already approved");
    assert_eq!(refused(&mut partners, |book| book.approve(VoucherId(2), at(31))), "is already approved");
    assert_eq!(refused(&mut partners, |book| book.approve(VoucherId(3), at(100))), "expired before approval");
    assert_eq!(refused(&mut partners, |book| book.approve(VoucherId(4), at(20))), "is invalidated");
    let customer_voucher = "is a customer voucher: it needs no approval";
    assert_eq!(refused(&mut partners, |book| book.approve(VoucherId(5), at(20))), customer_voucher);
    assert_eq!(refused(&mut partners, |book| book.approve(VoucherId(6), at(20))), customer_voucher);
    assert_eq!(refused(&mut partners, |book| book.approve(VoucherId(9), at(20))), "UnknownVoucher");
    assert_eq!(partners.approve(VoucherId(3), at(99)), Ok(None), "just before expiry");
}

#[test]
fn a_book_is_sorted_and_bounded() {
    let mut small = book(vec![offer(3, "1", 100), offer(1, "1", 100), offer(2, "1", 100)]);
    assert_eq!(small.iter().map(|voucher| voucher.id.0).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(small.get(VoucherId(2)).map(|voucher| voucher.id), Some(VoucherId(2)));
    assert!(small.get(VoucherId(4)).is_none() && small.get_mut(VoucherId(0)).is_none());
    assert_eq!((small.len(), small.is_empty(), VoucherBook::default().is_empty()), (3, false, true));

    let mut full = book((1..=VoucherBook::VOUCHERS_MAX as u64).map(|id| offer(id, "1", 100)).collect());
    let too_many = Rejection::TooMany { what: "vouchers of one account", limit: VoucherBook::VOUCHERS_MAX };
    let before = full.clone();
    assert_eq!(full.add(offer(20_000, "1", 100)), Err(too_many));
    assert_eq!(full, before);
    // Holding across all of them: the lowest ids first at equal expiry.
    let deductions = full.hold(m("10000"), None, PayMode::Prepaid, CUSTOMER, at(10), true);
    assert_eq!(deductions.parts.len(), VoucherBook::VOUCHERS_MAX);
    assert!(deductions.parts.windows(2).all(|pair| pair[0].0 < pair[1].0));
    assert_eq!(deductions.total(), m("10000"));
}

#[test]
#[should_panic(expected = "voucher ids must be unique")]
fn adding_an_id_twice_is_a_bug() {
    let _ = book(vec![offer(1, "1", 100), offer(1, "2", 100)]);
}

#[test]
fn usage_keeps_the_newest_records() {
    let mut book = book(vec![offer(1, "1000000", 100)]);
    let purchase = PurchaseId::new("p").unwrap();
    let uses = Voucher::USAGE_MAX as u64 + 1;
    for _ in 0..uses {
        let deductions = book.hold(m("1"), None, PayMode::Prepaid, CUSTOMER, at(10), true);
        book.settle(&deductions, &info(&purchase, 11));
    }
    let voucher = book.get(VoucherId(1)).unwrap();
    assert_eq!(voucher.usage().len(), Voucher::USAGE_MAX);
    assert_eq!(voucher.usage_count(), uses);
    assert_eq!(voucher.usage().front().map(|record| record.log_id), Some(2), "the oldest was dropped");
    assert_eq!(voucher.usage().back().map(|record| record.log_id), Some(uses));
    assert_eq!(voucher.remaining, m("1000000") - Money::from_units(uses as i64));
}

/// One step of the conservation property.
#[derive(Clone, Debug)]
enum Op {
    Hold { cents: i64, product: Option<&'static str>, pay: PayMode, customer: Uin, trial_first: bool },
    Settle(prop::sample::Index),
    Release(prop::sample::Index),
    Wait(i64),
    Withdraw(u64),
}

fn op() -> impl Strategy<Value = Op> {
    let product = prop::sample::select(vec![None, Some("cvm"), Some("cbs")]);
    let pay = prop::sample::select(PayMode::ALL.to_vec());
    let customer = prop::sample::select(vec![CUSTOMER, OTHER_CUSTOMER]);
    prop_oneof![
        4 => (0i64..1500, product, pay, customer, any::<bool>()).prop_map(
            |(cents, product, pay, customer, trial_first)| Op::Hold { cents, product, pay, customer, trial_first }
        ),
        2 => any::<prop::sample::Index>().prop_map(Op::Settle),
        2 => any::<prop::sample::Index>().prop_map(Op::Release),
        1 => (0i64..200).prop_map(Op::Wait),
        1 => (1u64..=6).prop_map(Op::Withdraw),
    ]
}

/// Every kind of voucher in one book (the book does not check whose they are), with
/// overlapping scopes and expiries.
fn mixed_book() -> VoucherBook {
    book(vec![
        offer(1, "5", 1000),
        offer_in(2, "3.33", 500, scope(SpecifyProducts, &["cvm"], AllPayment)),
        trial(3, "7", 2000),
        offer_in(4, "2.5", 800, scope(SpecifyProductsBlacklist, &["cbs"], PaymentMode::Prepaid)),
        general(5, "4", 1500),
        partner_trial(6, OTHER_CUSTOMER, "6", 700),
    ])
}

proptest! {
    /// After every step of any sequence of holds, settles, releases, withdrawals and the
    /// passing of time, each voucher's total is its remaining plus held plus settled, its
    /// held is exactly its open deductions, and a hold takes as much as it can, in order.
    #[test]
    fn deductions_conserve_every_voucher(ops in prop::collection::vec(op(), 0..60)) {
        let mut book = mixed_book();
        let purchase = PurchaseId::new("p").unwrap();
        let mut now = 0;
        let mut open: Vec<Deductions> = Vec::new();
        let mut settled: BTreeMap<VoucherId, Money> = BTreeMap::new();
        for op in ops {
            match op {
                Op::Hold { cents, product, pay, customer, trial_first } => {
                    let amount = Money::from_cents(cents);
                    let before = book.clone();
                    let usable = |voucher: &&Voucher| voucher.usable(at(now), product, pay, customer);
                    let available: Money = before.iter().filter(usable).map(|voucher| voucher.remaining).sum();
                    let deductions = book.hold(amount, product, pay, customer, at(now), trial_first);
                    prop_assert_eq!(deductions.total(), amount.min(available));
                    let key = |id| {
                        let voucher = before.get(id).unwrap();
                        (!(trial_first && voucher.is_trial()), voucher.expire, voucher.id)
                    };
                    prop_assert!(deductions.parts.windows(2).all(|pair| key(pair[0].0) < key(pair[1].0)));
                    for (index, &(id, part)) in deductions.parts.iter().enumerate() {
                        let voucher = before.get(id).unwrap();
                        prop_assert!(part.is_positive() && usable(&voucher));
                        if index + 1 < deductions.parts.len() {
                            prop_assert_eq!(part, voucher.remaining, "all but the last give all they have");
                        }
                    }
                    if !deductions.is_empty() {
                        open.push(deductions);
                    }
                }
                Op::Settle(index) if !open.is_empty() => {
                    let deductions = open.swap_remove(index.index(open.len()));
                    book.settle(&deductions, &info(&purchase, now));
                    for (id, part) in deductions.parts {
                        *settled.entry(id).or_default() += part;
                    }
                }
                Op::Release(index) if !open.is_empty() => {
                    book.release(&open.swap_remove(index.index(open.len())));
                }
                Op::Settle(_) | Op::Release(_) => {}
                Op::Wait(ms) => now += ms,
                Op::Withdraw(id) => {
                    let _ = book.withdraw(VoucherId(id), at(now));
                }
            }
            for voucher in book.iter() {
                let settled = settled.get(&voucher.id).copied().unwrap_or_default();
                let held: Money = open
                    .iter()
                    .flat_map(|deductions| &deductions.parts)
                    .filter(|(id, _)| *id == voucher.id)
                    .map(|&(_, part)| part)
                    .sum();
                prop_assert!(!voucher.remaining.is_negative() && !voucher.held.is_negative());
                prop_assert_eq!(voucher.held, held);
                prop_assert_eq!(voucher.total, voucher.remaining + voucher.held + settled);
                prop_assert_eq!(voucher.usage().iter().map(|record| record.amount).sum::<Money>(), settled);
            }
        }
        for deductions in open.drain(..) {
            book.release(&deductions);
        }
        prop_assert!(book.iter().all(|voucher| voucher.held.is_zero()));
    }
}
