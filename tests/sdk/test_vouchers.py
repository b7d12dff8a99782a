"""Vouchers end to end: the engine's own voucher actions through the SDK's CommonClient, the
upstream voucher queries through the typed client's own methods, and purchases that deduct
vouchers on both sides before credit.

The flow: the operator grants RES a voucher quota; RES issues two customer vouchers to C_RES
and applies for a General and a ProductTrial partner voucher, which the operator approves
(the trial one issues its associated customer voucher); purchases deduct them in the
documented order (trial vouchers first, then the earliest expiry, then the lowest id);
withdraw and invalidate end them."""

import datetime

import pytest

from conftest import (
    C_RES,
    C_RES2,
    C_RES_B,
    D,
    RES,
    RES2,
    UNTHROTTLED,
    World,
    error_code,
    toml_config,
)

# The voucher queries have documented quotas of a few per second; these tests call them
# back to back.
VOUCHER_QUERIES = {
    name: None
    for name in (
        "QueryVoucherPool",
        "QueryVoucherAmountByUin",
        "QueryVoucherListByUin",
        "DescribeCustomerVoucherList",
        "DescribeCustomerOwnVoucherList",
    )
}

C_NEW = 2_000_010  # a customer of RES with no credit, created here; the operator buys for it


@pytest.fixture
def vw(start_server) -> World:
    return World(start_server(toml_config(quotas={**UNTHROTTLED, **VOUCHER_QUERIES}))).setup()


def in_days(days: int) -> str:
    at = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=days)
    return at.strftime("%Y-%m-%d %H:%M:%S")


def buy(world, caller, purchase_id, customer, amount, **extra):
    return world.own(
        caller, "CreatePurchase", {"PurchaseId": purchase_id, "ClientUin": customer, "Amount": amount, **extra}
    )


def charges(answer) -> tuple:
    """(ClientVoucherDeduction, PartnerVoucherDeduction, ClientCharge, PartnerCharge), exactly."""
    names = ("ClientVoucherDeduction", "PartnerVoucherDeduction", "ClientCharge", "PartnerCharge")
    return tuple(D(answer[name]) for name in names)


def pool(world, partner=RES) -> dict:
    return world.up(partner, "QueryVoucherPool")


def vouchers_of(world, customer=C_RES) -> list:
    """The customer's vouchers as its partner lists them, newest first."""
    answer = world.up(RES, "DescribeCustomerVoucherList", {"Page": 1, "PageSize": 100, "CustomerUin": customer})
    assert answer["TotalCount"] == len(answer["Data"])
    return answer["Data"]


def books(world) -> tuple:
    """Everything the queries show: credit, and the voucher state."""
    amounts = world.up(RES, "QueryVoucherAmountByUin", {"ClientUins": [C_RES, C_RES_B]})
    return world.snapshot(), pool(world), vouchers_of(world), amounts


def issue(world, caller, customer, amount, **extra):
    params = {"CustomerUin": customer, "Amount": amount, "ExpireTime": in_days(30), **extra}
    return world.own(caller, "IssueCustomerVoucher", params)["VoucherId"]


def test_the_voucher_flow(vw):
    op = "operator"
    assert pool(vw) == {"AgentName": "Res", "AccountType": 1, "TotalQuota": 0, "RemainingQuota": 0, "IssuedNum": 0}
    assert vw.own(op, "GrantVoucherQuota", {"PartnerUin": RES, "Quota": 100}) == {"TotalQuota": 100}

    # Two customer vouchers: cvm only (the earliest expiry), and postpaid only.
    v1 = issue(vw, RES, C_RES, 10, ProductScope="SpecifyProducts", ProductCodes=["cvm"], ExpireTime=in_days(20))
    v2 = issue(vw, RES, C_RES, 5, PaymentMode="Postpaid")
    assert pool(vw) == {"AgentName": "Res", "AccountType": 1, "TotalQuota": 100, "RemainingQuota": 85, "IssuedNum": 2}

    # Partner vouchers: pending until the operator approves them.
    general = vw.own(RES, "ApplyPartnerVoucher", {"Type": "General", "Amount": 5, "ExpireTime": in_days(30)})
    assert general["VoucherStatus"] == "PendingApproval"
    trial = vw.own(
        RES,
        "ApplyPartnerVoucher",
        {
            "Type": "ProductTrial",
            "CustomerUin": C_RES,
            "Amount": 4,
            "ProductScope": "SpecifyProducts",
            "ProductCodes": ["cvm"],
            "ExpireTime": in_days(30),
        },
    )
    assert trial["VoucherStatus"] == "PendingApproval"
    before = books(vw)
    assert error_code(vw.own, RES, "ApprovePartnerVoucher", {"VoucherId": general["VoucherId"]}) == (
        "UnauthorizedOperation.UinNoAuth"
    )
    assert books(vw) == before
    approved = vw.own(op, "ApprovePartnerVoucher", {"VoucherId": general["VoucherId"]})
    assert approved == {"VoucherId": general["VoucherId"], "AssociatedVoucherId": None}
    approved = vw.own(op, "ApprovePartnerVoucher", {"VoucherId": trial["VoucherId"]})
    associated = approved["AssociatedVoucherId"]
    assert approved["VoucherId"] == trial["VoucherId"] and associated not in (None, v1, v2)

    # The customer sees its three vouchers; its partner sees their Usage too.
    own = vw.up(C_RES, "DescribeCustomerOwnVoucherList", {"Page": 1, "PageSize": 10})
    assert own["TotalCount"] == 3
    assert [(v["VoucherId"], v["VoucherStatus"], D(v["TotalAmount"])) for v in own["Data"]] == [
        (associated, "Issued", D(4)),
        (v2, "Issued", D(5)),
        (v1, "Issued", D(10)),
    ]
    assert [(v["PaymentMode"], v["ProductScope"], v["CustomerUin"]) for v in own["Data"]] == [
        ("AllPayment", "SpecifyProducts", C_RES),
        ("Postpaid", "AllProducts", C_RES),
        ("AllPayment", "SpecifyProducts", C_RES),
    ]
    listed = vouchers_of(vw)
    assert [(v["VoucherId"], v["Usage"], v["ApplyReason"]) for v in listed] == [
        (associated, "ProductTrial", ""),
        (v2, "CustomerOffer", ""),
        (v1, "CustomerOffer", ""),
    ]
    trials = vw.up(RES, "DescribeCustomerVoucherList", {"Page": 1, "PageSize": 10, "Usage": "ProductTrial"})
    assert [v["VoucherId"] for v in trials["Data"]] == [associated]
    offers = vw.up(RES, "DescribeCustomerVoucherList", {"Page": 1, "PageSize": 10, "Usage": "CustomerOffer"})
    assert [v["VoucherId"] for v in offers["Data"]] == [v2, v1]
    amounts = vw.up(RES, "QueryVoucherAmountByUin", {"ClientUins": [C_RES]})["Data"]
    assert [(a["ClientUin"], D(a["TotalAmount"]), D(a["RemainAmount"])) for a in amounts] == [(C_RES, D(19), D(19))]
    assert D(vw.up(C_RES, "QueryCustomerBillingQuota")["Data"]["RemainingVoucher"]) == D(19)

    # Out of every customer voucher's scope (not cvm, prepaid); the General one on RES's side.
    answer = buy(vw, C_RES, "pv-0", C_RES, 3, ProductCode="cos")
    assert charges(answer) == (D(0), D(3), D(3), D(0))
    assert (D(answer["ClientRemainingCredit"]), D(answer["PartnerRemainingCredit"])) == (D(97), D(500))
    # Trial vouchers first on both sides, then the rest: the customer 4 + 10, RES 4 + 2.
    answer = buy(vw, C_RES, "pv-1", C_RES, 20.5, ProductCode="cvm")
    assert charges(answer) == (D(14), D(6), D("6.5"), D("14.5"))
    assert (D(answer["ClientRemainingCredit"]), D(answer["PartnerRemainingCredit"])) == (D("90.5"), D("485.5"))

    # The usage details list the deductions, by the partner and by the customer.
    details = vw.up(RES, "DescribeCustomerVoucherUsageDetails", {"Page": 1, "PageSize": 10, "CustomerUin": C_RES, "VoucherId": v1})
    assert (details["CustomerUin"], details["VoucherId"], details["TotalRecordsCount"]) == (C_RES, v1, 1)
    assert (D(details["TotalAmount"]), D(details["RemainAmount"]), details["Month"], details["RecordsCountByMonth"]) == (
        D(10),
        D(0),
        "",
        1,
    )
    [record] = details["Data"]
    assert (record["VoucherId"], record["DealName"], record["BillId"], D(record["Amount"])) == (str(v1), "pv-1", "pv-1", D(10))
    assert (record["PayMode"], record["ProductCode"], record["ProductCodeName"], record["OwnerUin"]) == ("Prepaid", "cvm", "cvm", C_RES)
    assert (record["SubProductCode"], record["SubProductCodeName"]) == ("", "")
    assert record["PayTime"] == record["CompletionTime"] and record["Id"] > 0
    month = record["PayTime"][:7]
    own_details = vw.up(C_RES, "DescribeCustomerOwnVoucherUsageDetails", {"Page": 1, "PageSize": 10, "VoucherId": associated, "Month": month})
    assert [(r["DealName"], D(r["Amount"])) for r in own_details["Data"]] == [("pv-1", D(4))]
    assert (own_details["Month"], own_details["RecordsCountByMonth"]) == (month, 1)

    # The amounts, the lists by UIN and the billing quota agree: only the postpaid voucher is left.
    amounts = vw.up(RES, "QueryVoucherAmountByUin", {"ClientUins": [C_RES]})["Data"]
    assert [(D(a["TotalAmount"]), D(a["RemainAmount"])) for a in amounts] == [(D(19), D(5))]
    assert D(vw.up(C_RES, "QueryCustomerBillingQuota")["Data"]["RemainingVoucher"]) == D(5)
    lists = vw.up(RES, "QueryVoucherListByUin", {"ClientUins": [C_RES]})["Data"]
    assert [(item["ClientUin"], item["TotalCount"]) for item in lists] == [(C_RES, 3)]
    assert sorted((v["VoucherId"], v["VoucherStatus"], D(v["RemainAmount"])) for v in lists[0]["Data"]) == sorted(
        [(str(v1), "Used", D(0)), (str(v2), "Unused", D(5)), (str(associated), "Used", D(0))]
    )
    used = vw.up(RES, "QueryVoucherListByUin", {"ClientUins": [C_RES], "Status": "Used"})["Data"][0]
    assert sorted(v["VoucherId"] for v in used["Data"]) == sorted([str(v1), str(associated)])
    unused = vw.up(RES, "QueryVoucherListByUin", {"ClientUins": [C_RES], "Status": "Unused"})["Data"][0]
    assert [v["VoucherId"] for v in unused["Data"]] == [str(v2)]

    # Refusals change nothing.
    before = books(vw)
    assert error_code(issue, vw, RES, C_RES, 86) == "FailedOperation.InsufficientVoucherQuota"
    assert error_code(issue, vw, RES, C_RES, 1000001) == "InvalidParameterValue.VoucherAmountOutOfRange"
    assert error_code(issue, vw, RES2, C_RES, 1) == "UnauthorizedOperation.NotCustomerUin"
    assert error_code(vw.own, RES, "WithdrawCustomerVoucher", {"VoucherId": v1}) == "FailedOperation.VoucherStatus"
    assert error_code(vw.own, RES, "WithdrawCustomerVoucher", {"VoucherId": associated}) == "FailedOperation.VoucherStatus"
    # Another partner is told the voucher does not exist: ids do not reveal their owners.
    assert error_code(vw.own, RES2, "InvalidatePartnerVoucher", {"VoucherId": trial["VoucherId"]}) == (
        "ResourceNotFound.VoucherId"
    )
    code = error_code(vw.up, RES, "DescribeCustomerVoucherList", {"Page": 1, "PageSize": 10, "VoucherStatus": "Issused"})
    assert code == "InvalidParameterValue"
    assert books(vw) == before

    # Withdraw the postpaid offer; invalidate the trial partner voucher, and its customer
    # voucher goes with it.
    assert vw.own(RES, "WithdrawCustomerVoucher", {"VoucherId": v2}) == {}
    assert vw.own(RES, "InvalidatePartnerVoucher", {"VoucherId": trial["VoucherId"]}) == {}
    statuses = {v["VoucherId"]: v["VoucherStatus"] for v in vouchers_of(vw)}
    assert statuses == {associated: "Invalidated", v2: "Invalidated", v1: "Used"}
    invalidated = vw.up(C_RES, "DescribeCustomerOwnVoucherList", {"Page": 1, "PageSize": 10, "VoucherStatus": "Invalidated"})
    assert [v["VoucherId"] for v in invalidated["Data"]] == [associated, v2]
    # Withdrawn and invalidated vouchers no longer count in the denominations: only v1's 10.
    amounts = vw.up(RES, "QueryVoucherAmountByUin", {"ClientUins": [C_RES]})["Data"]
    assert [(D(a["TotalAmount"]), D(a["RemainAmount"])) for a in amounts] == [(D(10), D(0))]
    # A postpaid purchase finds no voucher now.
    answer = buy(vw, C_RES, "pv-2", C_RES, 1, PaymentMode="Postpaid")
    assert charges(answer) == (D(0), D(0), D(1), D(1))


def test_a_purchase_fully_covered_by_vouchers_needs_no_credit(vw):
    op = "operator"
    assert vw.own(op, "CreateClient", {"ParentUin": RES, "Uin": C_NEW, "Name": "no credit"}) == {"Uin": C_NEW}
    vw.own(op, "GrantVoucherQuota", {"PartnerUin": RES, "Quota": 10})
    issue(vw, RES, C_NEW, 7)
    general = vw.own(RES, "ApplyPartnerVoucher", {"Type": "General", "Amount": 7, "ExpireTime": in_days(30)})
    vw.own(op, "ApprovePartnerVoucher", {"VoucherId": general["VoucherId"]})
    partner_before = vw.partner_credit(RES)
    # Both sides wholly covered: nothing is charged to either's credit.
    answer = buy(vw, op, "full-1", C_NEW, 7)
    assert charges(answer) == (D(7), D(7), D(0), D(0))
    assert (D(answer["ClientRemainingCredit"]), D(answer["PartnerRemainingCredit"])) == (D(0), partner_before["RemainingCredit"])
    assert vw.partner_credit(RES) == partner_before
    # The vouchers are used up: a customer with no credit cannot buy any more.
    before = vw.snapshot()
    assert error_code(buy, vw, op, "full-2", C_NEW, 0.01) == "FailedOperation.InsufficientClientCredit"
    assert vw.snapshot() == before


def test_reserve_holds_voucher_deductions_until_cancelled(vw):
    vw.own("operator", "GrantVoucherQuota", {"PartnerUin": RES, "Quota": 10})
    voucher = issue(vw, RES, C_RES, 10)
    reserved = vw.own(C_RES, "ReservePurchase", {"PurchaseId": "rv-1", "ClientUin": C_RES, "Amount": 8})
    assert charges(reserved) == (D(8), D(0), D(0), D(8))
    # Held: not in what is left, not yet recorded as used.
    assert D(vw.up(C_RES, "QueryCustomerBillingQuota")["Data"]["RemainingVoucher"]) == D(2)
    details = vw.up(C_RES, "DescribeCustomerOwnVoucherUsageDetails", {"Page": 1, "PageSize": 10, "VoucherId": voucher})
    assert (details["Data"], details["TotalRecordsCount"]) == ([], 0)
    vw.own(C_RES, "CancelPurchase", {"PurchaseId": "rv-1"})
    assert D(vw.up(C_RES, "QueryCustomerBillingQuota")["Data"]["RemainingVoucher"]) == D(10)
    # The same amount committed: recorded once.
    vw.own(C_RES, "ReservePurchase", {"PurchaseId": "rv-2", "ClientUin": C_RES, "Amount": 8})
    vw.own(C_RES, "CommitPurchase", {"PurchaseId": "rv-2"})
    details = vw.up(C_RES, "DescribeCustomerOwnVoucherUsageDetails", {"Page": 1, "PageSize": 10, "VoucherId": voucher})
    assert [(r["DealName"], D(r["Amount"])) for r in details["Data"]] == [("rv-2", D(8))]
    assert D(vw.up(C_RES, "QueryCustomerBillingQuota")["Data"]["RemainingVoucher"]) == D(2)


def test_trial_priority_can_be_switched_off(vw):
    op = "operator"
    vw.own(op, "GrantVoucherQuota", {"PartnerUin": RES, "Quota": 10})
    offer = issue(vw, RES, C_RES, 10, ExpireTime=in_days(5))
    trial = vw.own(RES, "ApplyPartnerVoucher", {"Type": "ProductTrial", "CustomerUin": C_RES, "Amount": 3, "ExpireTime": in_days(30)})
    associated = vw.own(op, "ApprovePartnerVoucher", {"VoucherId": trial["VoucherId"]})["AssociatedVoucherId"]
    assert vw.own(RES, "SetTrialVoucherPriority", {"Enabled": False}) == {}
    # Off: the earliest expiry first, which is the offer.
    buy(vw, C_RES, "tp-1", C_RES, 2)
    remaining = {v["VoucherId"]: D(v["RemainingAmount"]) for v in vouchers_of(vw)}
    assert remaining == {offer: D(8), associated: D(3)}
    assert vw.own(op, "SetTrialVoucherPriority", {"Enabled": True, "PartnerUin": RES}) == {}
    buy(vw, C_RES, "tp-2", C_RES, 2)
    remaining = {v["VoucherId"]: D(v["RemainingAmount"]) for v in vouchers_of(vw)}
    assert remaining == {offer: D(8), associated: D(1)}
    before = books(vw)
    assert error_code(vw.own, RES2, "SetTrialVoucherPriority", {"Enabled": False, "PartnerUin": RES}) == (
        "UnauthorizedOperation.UinNoAuth"
    )
    assert error_code(vw.own, op, "SetTrialVoucherPriority", {"Enabled": False}) == "MissingParameter"
    assert books(vw) == before


@pytest.mark.parametrize(
    "caller, action, params, code",
    [
        (RES, "IssueCustomerVoucher", {"CustomerUin": C_RES, "Amount": 1}, "MissingParameter"),
        (RES, "IssueCustomerVoucher", {"CustomerUin": C_RES, "Amount": -1, "ExpireTime": "2030-01-01 00:00:00"}, "InvalidParameterValue.VoucherAmountOutOfRange"),
        (RES, "IssueCustomerVoucher", {"CustomerUin": C_RES, "Amount": 1, "ExpireTime": "2030-01-01"}, "InvalidParameterValue"),
        (RES, "IssueCustomerVoucher", {"CustomerUin": C_RES, "Amount": 1, "ExpireTime": "2030-02-30 00:00:00"}, "InvalidParameterValue"),
        (RES, "IssueCustomerVoucher", {"CustomerUin": C_RES, "Amount": "1", "ExpireTime": "2030-01-01 00:00:00"}, "InvalidParameter"),
        (RES, "IssueCustomerVoucher", {"CustomerUin": C_RES, "Amount": 1, "ExpireTime": "2030-01-01 00:00:00", "ProductScope": "SpecifyProducts"}, "MissingParameter"),
        (RES, "IssueCustomerVoucher", {"CustomerUin": C_RES, "Amount": 1, "ExpireTime": "2030-01-01 00:00:00", "PaymentMode": "Cash"}, "InvalidParameterValue"),
        (RES, "ApplyPartnerVoucher", {"Type": "Gift", "Amount": 1, "ExpireTime": "2030-01-01 00:00:00"}, "InvalidParameterValue"),
        (RES, "ApplyPartnerVoucher", {"Type": "General", "CustomerUin": C_RES, "Amount": 1, "ExpireTime": "2030-01-01 00:00:00"}, "InvalidParameterValue"),
        (RES, "ApplyPartnerVoucher", {"Type": "ProductTrial", "Amount": 1, "ExpireTime": "2030-01-01 00:00:00"}, "MissingParameter"),
        ("operator", "ApplyPartnerVoucher", {"Type": "General", "Amount": 1, "ExpireTime": "2030-01-01 00:00:00"}, "MissingParameter"),
        ("operator", "ApprovePartnerVoucher", {"VoucherId": 424242}, "ResourceNotFound.VoucherId"),
        ("operator", "GrantVoucherQuota", {"PartnerUin": RES, "Quota": "10"}, "InvalidParameter"),
        (RES, "GrantVoucherQuota", {"PartnerUin": RES, "Quota": 10}, "UnauthorizedOperation.UinNoAuth"),
        (C_RES2, "DescribeCustomerOwnVoucherList", {"Page": 1, "PageSize": 10, "VoucherStatus": "Issused"}, "InvalidParameterValue"),
        (RES, "QueryVoucherListByUin", {"ClientUins": [C_RES], "Status": "Issued"}, "InvalidParameterValue"),
        (RES, "QueryVoucherAmountByUin", {"ClientUins": [C_RES2]}, "UnauthorizedOperation.NotCustomerUin"),
    ],
)
def test_voucher_refusals_change_nothing(vw, caller, action, params, code):
    vw.own("operator", "GrantVoucherQuota", {"PartnerUin": RES, "Quota": 10})
    before = books(vw)
    upstream = action.startswith(("Describe", "Query"))
    call = vw.up if upstream else vw.own
    assert error_code(call, caller, action, params) == code
    assert books(vw) == before
