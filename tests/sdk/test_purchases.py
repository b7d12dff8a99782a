"""Purchases end to end: the engine's own purchase actions through the SDK's CommonClient,
the books read back through the upstream queries of the typed client."""

import datetime
import time

from conftest import (
    C_RES,
    C_RES2,
    C_RES_B,
    C_SUB,
    D,
    DIST,
    NOBODY,
    RES,
    RES2,
    SUB,
    error_code,
)


def buy(world, caller, purchase_id, customer, amount, **extra):
    return world.own(
        caller, "CreatePurchase", {"PurchaseId": purchase_id, "ClientUin": customer, "Amount": amount, **extra}
    )


def test_the_world_is_set_up_with_the_documented_answers(world):
    assert world.grants[DIST] == {"TotalCredit": 1000, "RemainingCredit": 1000}
    assert world.grants[RES] == {"TotalCredit": 500, "RemainingCredit": 500}
    # AllocateCreditPool answers the pool's total and what is left of it to allocate.
    assert world.pool == {"TotalCredit": 300, "RemainingCredit": 300}
    assert world.allocations[C_SUB] == {"TotalCredit": 100, "RemainingCredit": 100}
    assert world.allocations[C_RES] == {"TotalCredit": 100, "RemainingCredit": 100}
    assert world.allocations[C_RES_B] == {"TotalCredit": 50, "RemainingCredit": 50}


def test_purchase_by_a_customer_of_a_reseller_charges_the_reseller(world):
    answer = buy(world, C_RES, "p-res-1", C_RES, 30.25, ProductCode="cvm")
    assert answer == {
        "PurchaseId": "p-res-1",
        "Status": "Committed",
        "ChargedUin": RES,
        "ClientRemainingCredit": 69.75,
        "PartnerRemainingCredit": 469.75,
        # No vouchers: each side pays the whole amount from its credit.
        "ClientVoucherDeduction": 0,
        "PartnerVoucherDeduction": 0,
        "ClientCharge": 30.25,
        "PartnerCharge": 30.25,
    }
    # The operator may buy on behalf of any customer.
    answer = buy(world, "operator", "p-res-2", C_RES_B, 0.5)
    assert (answer["ChargedUin"], D(answer["ClientRemainingCredit"]), D(answer["PartnerRemainingCredit"])) == (
        RES,
        D("49.5"),
        D("469.25"),
    )


def test_purchase_by_a_customer_of_a_reseller_reads_back(world):
    buy(world, C_RES, "p-res-1", C_RES, 30.25)
    assert world.customer_credit(C_RES) == (D(100), D("69.75"))
    quota = world.up(C_RES, "QueryCustomerBillingQuota")["Data"]
    assert (D(quota["TotalCredit"]), D(quota["RemainingCredit"])) == (D(100), D("69.75"))
    assert world.partner_credit(RES) == {
        "TotalCredit": D(500),
        "AllocatedCredit": D(150),
        "RemainingCredit": D("469.75"),
        "CustomerTotalCredit": D(150),
        "CustomerRemainingCredit": D("119.75"),
    }


def test_customer_of_a_second_level_reseller_charges_the_distributor(world):
    answer = buy(world, C_SUB, "p-sub-1", C_SUB, 20.125)
    assert answer == {
        "PurchaseId": "p-sub-1",
        "Status": "Committed",
        "ChargedUin": DIST,
        "ClientRemainingCredit": 79.875,
        "PartnerRemainingCredit": 979.875,
        "ClientVoucherDeduction": 0,
        "PartnerVoucherDeduction": 0,
        "ClientCharge": 20.125,
        "PartnerCharge": 20.125,
    }


def test_customer_of_a_second_level_reseller_reads_back(world):
    buy(world, C_SUB, "p-sub-1", C_SUB, 20.125)
    dist = world.partner_credit(DIST)
    assert (dist["TotalCredit"], dist["AllocatedCredit"], dist["RemainingCredit"]) == (
        D(1000),
        D(300),
        D("979.875"),
    )
    assert world.customer_credit(C_SUB) == (D(100), D("79.875"))
    quota = world.up(C_SUB, "QueryCustomerBillingQuota")["Data"]
    assert (D(quota["TotalCredit"]), D(quota["RemainingCredit"])) == (D(100), D("79.875"))
    # The second-level reseller is never charged: its pool is what it was.
    assert world.up(DIST, "AllocateCreditPool", {"SubAgentUin": SUB, "Credit": 0.01}) == {
        "TotalCredit": 300.01,
        "RemainingCredit": 200.01,
    }


def test_insufficient_customer_credit_refuses_and_changes_nothing(world):
    before = world.snapshot()
    assert error_code(buy, world, C_RES, "p-big", C_RES, 100.01) == "FailedOperation.InsufficientClientCredit"
    assert world.snapshot() == before
    # The whole available credit can be spent, to the cent.
    assert buy(world, C_RES, "p-all", C_RES, 100)["ClientRemainingCredit"] == 0
    assert error_code(buy, world, C_RES, "p-one-more", C_RES, 0.01) == "FailedOperation.InsufficientClientCredit"


def test_insufficient_partner_credit_refuses_and_changes_nothing(world):
    # The operator reduces RES2's line to 20 while its customer still holds 40.
    assert world.own("operator", "GrantPartnerCredit", {"PartnerUin": RES2, "Credit": -180}) == {
        "TotalCredit": 20,
        "RemainingCredit": 20,
    }
    # A reduction cannot take the available credit below zero.
    code = error_code(world.own, "operator", "GrantPartnerCredit", {"PartnerUin": RES2, "Credit": -20.01})
    assert code == "InvalidParameterValue.CreditAmountOutOfRange"
    before = world.snapshot()
    assert error_code(buy, world, C_RES2, "p-r2", C_RES2, 30) == "FailedOperation.InsufficientPartnerCredit"
    assert world.snapshot() == before
    answer = buy(world, C_RES2, "p-r2-ok", C_RES2, 20)
    assert (answer["ChargedUin"], answer["ClientRemainingCredit"], answer["PartnerRemainingCredit"]) == (RES2, 20, 0)


def test_reserve_then_commit(world):
    before = time.time()
    reserved = world.own(C_RES, "ReservePurchase", {"PurchaseId": "r-1", "ClientUin": C_RES, "Amount": 10})
    assert (reserved["PurchaseId"], reserved["Status"]) == ("r-1", "Reserved")
    expire = datetime.datetime.strptime(reserved["ExpireTime"], "%Y-%m-%d %H:%M:%S")
    expire = expire.replace(tzinfo=datetime.timezone.utc).timestamp()
    assert before + 60 - 2 <= expire <= time.time() + 60 + 1, reserved["ExpireTime"]
    assert world.own(C_RES, "CommitPurchase", {"PurchaseId": "r-1"}) == {"PurchaseId": "r-1", "Status": "Committed"}
    # A repeated commit answers the same; a cancel after it is refused.
    assert world.own(C_RES, "CommitPurchase", {"PurchaseId": "r-1"}) == {"PurchaseId": "r-1", "Status": "Committed"}
    assert error_code(world.own, C_RES, "CancelPurchase", {"PurchaseId": "r-1"}) == "FailedOperation.PurchaseCommitted"
    # Committed once: 10 spent on both sides.
    answer = buy(world, C_RES, "p-after", C_RES, 1)
    assert (answer["ClientRemainingCredit"], answer["PartnerRemainingCredit"]) == (89, 489)


def test_reserve_holds_credit_until_cancelled(world):
    world.own(C_RES, "ReservePurchase", {"PurchaseId": "r-2", "ClientUin": C_RES, "Amount": 60, "TimeoutSeconds": 600})
    # While reserved, the 60 is not available to another purchase.
    assert error_code(buy, world, C_RES, "p-50-early", C_RES, 50) == "FailedOperation.InsufficientClientCredit"
    assert world.own("operator", "CancelPurchase", {"PurchaseId": "r-2"}) == {"PurchaseId": "r-2", "Status": "Cancelled"}
    assert error_code(world.own, C_RES, "CommitPurchase", {"PurchaseId": "r-2"}) == "FailedOperation.PurchaseCancelled"
    answer = buy(world, C_RES, "p-50", C_RES, 50)
    assert (answer["ClientRemainingCredit"], answer["PartnerRemainingCredit"]) == (50, 450)


def test_reserved_credit_shows_in_the_queries(world):
    world.own(C_RES, "ReservePurchase", {"PurchaseId": "r-3", "ClientUin": C_RES, "Amount": 25})
    assert world.customer_credit(C_RES) == (D(100), D(75))
    world.own(C_RES, "CancelPurchase", {"PurchaseId": "r-3"})
    assert world.customer_credit(C_RES) == (D(100), D(100))


def test_a_reservation_not_committed_in_time_expires(world):
    reserved = world.own(
        C_RES, "ReservePurchase", {"PurchaseId": "r-exp", "ClientUin": C_RES, "Amount": 99, "TimeoutSeconds": 1}
    )
    expire = datetime.datetime.strptime(reserved["ExpireTime"], "%Y-%m-%d %H:%M:%S")
    expire = expire.replace(tzinfo=datetime.timezone.utc).timestamp()
    # Not a synchronisation: the deadline itself is under test (ExpireTime has whole seconds).
    time.sleep(max(0.0, expire + 1.2 - time.time()))
    code = error_code(world.own, C_RES, "CommitPurchase", {"PurchaseId": "r-exp"})
    assert code == "FailedOperation.ReservationExpired"
    # The 99 came back.
    assert buy(world, C_RES, "p-after-exp", C_RES, 100)["ClientRemainingCredit"] == 0


def test_reserve_refusals(world):
    params = {"PurchaseId": "r-x", "ClientUin": C_RES, "Amount": 100.01}
    assert error_code(world.own, C_RES, "ReservePurchase", params) == "FailedOperation.InsufficientClientCredit"
    params = {"PurchaseId": "r-x", "ClientUin": C_RES, "Amount": 1, "TimeoutSeconds": 0}
    assert error_code(world.own, C_RES, "ReservePurchase", params) == "InvalidParameterValue"
    assert error_code(world.own, C_RES, "CommitPurchase", {"PurchaseId": "nope"}) == "ResourceNotFound.PurchaseId"
    assert error_code(world.own, C_RES, "CancelPurchase", {"PurchaseId": "nope"}) == "ResourceNotFound.PurchaseId"
    # Nothing was held by the refused reservations.
    assert buy(world, C_RES, "p-all", C_RES, 100)["ClientRemainingCredit"] == 0


def test_repeating_a_purchase_id_is_idempotent(world):
    first = buy(world, C_RES, "p-same", C_RES, 10)
    again = buy(world, C_RES, "p-same", C_RES, 10)
    assert again == first
    # Charged once.
    assert buy(world, C_RES, "p-next", C_RES, 1)["ClientRemainingCredit"] == 89
    # The same id with other content is a conflict, and changes nothing.
    before = world.snapshot()
    assert error_code(buy, world, C_RES, "p-same", C_RES, 11) == "FailedOperation.PurchaseIdConflict"
    assert error_code(buy, world, "operator", "p-same", C_RES_B, 10) == "FailedOperation.PurchaseIdConflict"
    # Another customer claiming the id learns nothing about it.
    assert error_code(buy, world, C_RES_B, "p-same", C_RES_B, 10) == "UnauthorizedOperation.NotCustomerUin"
    assert world.snapshot() == before


def test_batch_purchases_answer_per_purchase_in_order(world):
    answer = world.own(
        "operator",
        "CreatePurchases",
        {
            "Purchases": [
                {"PurchaseId": "b-1", "ClientUin": C_RES, "Amount": 40},
                {"PurchaseId": "b-2", "ClientUin": C_RES_B, "Amount": 70},
                {"PurchaseId": "b-3", "ClientUin": NOBODY, "Amount": 1},
                {"PurchaseId": "b-4", "ClientUin": C_SUB, "Amount": 5, "ProductCode": "cos"},
                {"PurchaseId": "b-5", "ClientUin": C_RES2, "Amount": 0},
            ]
        },
    )
    results = answer["Results"]
    assert [r["PurchaseId"] for r in results] == ["b-1", "b-2", "b-3", "b-4", "b-5"]
    assert [r["Status"] for r in results] == ["Committed", "Refused", "Refused", "Committed", "Refused"]
    assert results[1]["ErrorCode"] == "FailedOperation.InsufficientClientCredit"
    assert results[2]["ErrorCode"] == "ResourceNotFound.ClientUin"
    assert results[4]["ErrorCode"] == "InvalidParameterValue.Amount"
    assert all(r.get("ErrorMessage") for r in results if r["Status"] == "Refused")
    assert all("ErrorCode" not in r for r in results if r["Status"] == "Committed")
    assert [(r["ClientCharge"], r["PartnerCharge"]) for r in results if r["Status"] == "Committed"] == [(40, 40), (5, 5)]
    assert buy(world, C_RES, "p-check", C_RES, 1)["ClientRemainingCredit"] == 59
    assert buy(world, C_RES_B, "p-check-b", C_RES_B, 1)["ClientRemainingCredit"] == 49
    assert buy(world, C_SUB, "p-check-sub", C_SUB, 1)["PartnerRemainingCredit"] == 994


def test_a_batch_runs_its_purchases_concurrently(world):
    """Two purchases of one customer that cannot both pass: like two calls at once, exactly
    one of them is committed (either), and the books say which."""
    for customer, available in ((C_RES, 100), (C_SUB, 100), (C_RES_B, 50), (C_RES2, 40)):
        amounts = [available * 2 // 5, available * 7 // 10]
        answer = world.own(
            "operator",
            "CreatePurchases",
            {
                "Purchases": [
                    {"PurchaseId": f"o-{customer}-{index}", "ClientUin": customer, "Amount": amount}
                    for index, amount in enumerate(amounts)
                ]
            },
        )
        results = answer["Results"]
        assert [r["PurchaseId"] for r in results] == [f"o-{customer}-0", f"o-{customer}-1"]
        statuses = sorted(r["Status"] for r in results)
        assert statuses == ["Committed", "Refused"], (customer, results)
        paid = next(a for a, r in zip(amounts, results) if r["Status"] == "Committed")
        refused = next(r for r in results if r["Status"] == "Refused")
        assert refused["ErrorCode"] == "FailedOperation.InsufficientClientCredit"
        left = world.up("operator", "QueryCreditByUinList", {"UinList": [customer]})["Data"][0]["RemainingCredit"]
        assert left == available - paid


def test_purchase_refusals_for_unknown_customers_and_bad_amounts(world):
    before = world.snapshot()
    assert error_code(buy, world, "operator", "p-nobody", NOBODY, 1) == "ResourceNotFound.ClientUin"
    assert error_code(buy, world, C_RES, "p-zero", C_RES, 0) == "InvalidParameterValue.Amount"
    assert error_code(buy, world, C_RES, "p-neg", C_RES, -5) == "InvalidParameterValue.Amount"
    assert world.snapshot() == before


def test_a_customer_buys_only_for_itself(world):
    before = world.snapshot()
    code = error_code(buy, world, C_RES_B, "p-other", C_RES, 1)
    assert code == "UnauthorizedOperation.NotCustomerUin"
    # A partner cannot buy for another partner's customer either.
    assert error_code(buy, world, RES, "p-other2", C_RES2, 1) == "UnauthorizedOperation.NotCustomerUin"
    assert world.snapshot() == before


def test_forced_suspension_refuses_purchases_until_lifted(world):
    assert world.up(RES, "ForceQN", {"ClientUin": C_RES, "Type": 2}) is not None
    before = world.snapshot()
    assert error_code(buy, world, C_RES, "p-qn", C_RES, 1) == "FailedOperation.ServiceSuspended"
    params = {"PurchaseId": "r-qn", "ClientUin": C_RES, "Amount": 1}
    assert error_code(world.own, C_RES, "ReservePurchase", params) == "FailedOperation.ServiceSuspended"
    assert world.snapshot() == before
    assert world.up(C_RES, "QueryCustomerBillingQuota")["Data"]["Force"] == 2
    # Other customers of the same reseller are not suspended.
    assert buy(world, C_RES_B, "p-b", C_RES_B, 1)["Status"] == "Committed"
    world.up(RES, "ForceQN", {"ClientUin": C_RES, "Type": 0})
    assert buy(world, C_RES, "p-qn-2", C_RES, 1)["ClientRemainingCredit"] == 99


def test_force_qn_on_another_partners_customer_is_refused(world):
    before = world.snapshot()
    code = error_code(world.up, RES2, "ForceQN", {"ClientUin": C_RES, "Type": 2})
    assert code == "UnauthorizedOperation.NotCustomerUin"
    assert world.snapshot() == before
    assert buy(world, C_RES, "p-ok", C_RES, 1)["Status"] == "Committed"
