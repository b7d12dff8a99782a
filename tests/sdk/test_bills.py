"""Frozen credit, bill confirmation, credit warning thresholds and the adjustable clock, end
to end through the SDK's CommonClient (the engine's own actions) and the typed client (the
upstream queries that read the results back).

Bill months become final only after they end (plus the longest reservation timeout and a
minute of grace), so the bill tests run a server configured for rehearsals:
`[engine] adjustable_clock = true`, on which the operator's `AdvanceClock` moves the
engine's clock forward, and a small `reservation_timeout_ms_max`."""

import datetime

import pytest
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException

from conftest import (
    C_RES,
    C_RES2,
    C_RES_B,
    C_SUB,
    D,
    DIST,
    RES,
    RES2,
    SUB,
    UNTHROTTLED,
    World,
    error_code,
    toml_config,
)

REHEARSAL = {
    "adjustable_clock": True,
    "reservation_timeout_ms_max": 1000,
    "freezing_coefficient_default": 0.25,
}
# A month is final from its end plus reservation_timeout_ms_max plus this grace.
FINALITY_GRACE_SECS = 60


@pytest.fixture
def rehearsal(start_server) -> World:
    return World(start_server(toml_config(quotas=UNTHROTTLED, engine=REHEARSAL), name="rehearsal")).setup()


def buy(world, caller, purchase_id, customer, amount, **extra):
    return world.own(
        caller, "CreatePurchase", {"PurchaseId": purchase_id, "ClientUin": customer, "Amount": amount, **extra}
    )


def parse_time(text: str) -> datetime.datetime:
    return datetime.datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=datetime.timezone.utc)


def advance(world, seconds: int) -> datetime.datetime:
    """Moves the server's clock forward; answers the server's time after."""
    answer = world.own("operator", "AdvanceClock", {"Seconds": seconds})
    assert list(answer) == ["Now"], answer
    return parse_time(answer["Now"])


def month_end(at: datetime.datetime) -> datetime.datetime:
    first = at.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return (first + datetime.timedelta(days=32)).replace(day=1)


def quota(world, customer) -> dict:
    return {name: D(value) for name, value in world.up(customer, "QueryCustomerBillingQuota")["Data"].items()}


# ----- frozen credit -------------------------------------------------------------------------


def test_postpaid_freezes_credit_until_terminated(world):
    frozen = world.own(
        RES, "ActivatePostpaid", {"ResourceId": "vm-1", "ClientUin": C_RES, "Amount": 60, "FreezingCoefficient": 0.5}
    )
    assert frozen == {"FrozenAmount": 30}
    shown = quota(world, C_RES)
    assert (shown["TotalCredit"], shown["RemainingCredit"], shown["PostpayFrozen"], shown["PrepayFrozen"]) == (
        D(100),
        D(70),
        D(30),
        D(0),
    )
    assert world.customer_credit(C_RES) == (D(100), D(70))

    before = world.snapshot()
    assert error_code(buy, world, C_RES, "f-over", C_RES, 70.01) == "FailedOperation.InsufficientClientCredit"
    params = {"ResourceId": "vm-1", "ClientUin": C_RES, "Amount": 1}
    assert error_code(world.own, RES, "ActivatePostpaid", params) == "ResourceInUse.ResourceId"
    # Without a coefficient the whole amount is frozen (the default of 1): 71 does not fit.
    params = {"ResourceId": "vm-2", "ClientUin": C_RES, "Amount": 71}
    assert error_code(world.own, C_RES, "ActivatePostpaid", params) == "FailedOperation.InsufficientClientCredit"
    params = {"ResourceId": "vm-3", "ClientUin": C_RES, "Amount": 1}
    assert error_code(world.own, RES2, "ActivatePostpaid", params) == "UnauthorizedOperation.NotCustomerUin"
    params = {"ResourceId": "vm-3", "ClientUin": C_RES, "Amount": 1, "FreezingCoefficient": 1.01}
    assert error_code(world.own, RES, "ActivatePostpaid", params) == "InvalidParameterValue"
    assert error_code(world.own, RES, "TerminatePostpaid", {"ResourceId": "vm-9"}) == "ResourceNotFound.ResourceId"
    assert error_code(world.own, RES2, "TerminatePostpaid", {"ResourceId": "vm-1"}) == "ResourceNotFound.ResourceId"
    assert world.snapshot() == before

    # The rest can be spent; terminating the resource gives the frozen 30 back.
    assert buy(world, C_RES, "f-rest", C_RES, 70)["ClientRemainingCredit"] == 0
    assert world.own(C_RES, "TerminatePostpaid", {"ResourceId": "vm-1"}) == {"ClientUin": C_RES, "RemainingCredit": 30}
    shown = quota(world, C_RES)
    assert (shown["RemainingCredit"], shown["PostpayFrozen"]) == (D(30), D(0))
    assert error_code(world.own, C_RES, "TerminatePostpaid", {"ResourceId": "vm-1"}) == "ResourceNotFound.ResourceId"
    # The id is free again.
    assert world.own(C_RES, "ActivatePostpaid", {"ResourceId": "vm-1", "ClientUin": C_RES, "Amount": 30})["FrozenAmount"] == 30


def test_the_configured_freezing_coefficient_is_the_default(rehearsal):
    frozen = rehearsal.own(RES2, "ActivatePostpaid", {"ResourceId": "db-1", "ClientUin": C_RES2, "Amount": 10})
    assert frozen == {"FrozenAmount": 2.5}
    assert quota(rehearsal, C_RES2)["PostpayFrozen"] == D("2.5")
    # Rounded up to 8 decimals: never less than amount x coefficient is frozen.
    frozen = rehearsal.own(
        RES2, "ActivatePostpaid", {"ResourceId": "db-2", "ClientUin": C_RES2, "Amount": 0.00000001, "FreezingCoefficient": 0.5}
    )
    assert frozen == {"FrozenAmount": 0.00000001}


# ----- bills ---------------------------------------------------------------------------------


def test_bills_are_confirmed_once_the_month_is_final(rehearsal):
    w = rehearsal
    buy(w, C_RES, "b-1", C_RES, 30)
    buy(w, C_RES, "b-2", C_RES, 12.5, ProductCode="cvm")
    buy(w, C_RES_B, "b-3", C_RES_B, 7)
    buy(w, C_SUB, "b-4", C_SUB, 20)
    now = advance(w, 1)
    month = now.strftime("%Y-%m")

    # The month is not over: nothing can be confirmed yet.
    before = w.snapshot()
    code = error_code(w.own, RES, "ConfirmBill", {"ClientUin": C_RES, "Month": month})
    assert code == "FailedOperation.BillNotFinal"
    code = error_code(w.own, "operator", "SettlePartnerBill", {"PartnerUin": RES, "Month": month})
    assert code == "FailedOperation.BillNotFinal"
    assert w.snapshot() == before

    # Past the month's end, the longest reservation (1 s) and the grace.
    final = month_end(now) + datetime.timedelta(seconds=1 + FINALITY_GRACE_SECS)
    later = advance(w, int((final - now).total_seconds()) + 2)
    assert later >= final, (later, final)
    # The SDK still signs with the real time, and the server still accepts it.
    assert w.own(RES, "ConfirmBill", {"ClientUin": C_RES, "Month": month}) == {"ReturnedCredit": 42.5}
    shown = quota(w, C_RES)
    assert (shown["TotalCredit"], shown["RemainingCredit"]) == (D(100), D(100))
    assert w.customer_credit(C_RES_B) == (D(50), D(43)), "another customer's bill is its own"

    before = w.snapshot()
    code = error_code(w.own, RES, "ConfirmBill", {"ClientUin": C_RES, "Month": month})
    assert code == "FailedOperation.BillConfirmed"
    code = error_code(w.own, RES2, "ConfirmBill", {"ClientUin": C_RES_B, "Month": month})
    assert code == "UnauthorizedOperation.NotCustomerUin"
    code = error_code(w.own, RES, "SettlePartnerBill", {"PartnerUin": RES, "Month": month})
    assert code == "UnauthorizedOperation.UinNoAuth"
    code = error_code(w.own, RES, "ConfirmBill", {"ClientUin": C_RES_B, "Month": "2001-01"})
    assert code == "ResourceNotFound.Bill"
    assert w.snapshot() == before

    # The reseller's own charges: 30 + 12.5 + 7, settled by the operator, once.
    assert w.own("operator", "SettlePartnerBill", {"PartnerUin": RES, "Month": month}) == {"ReturnedCredit": 49.5}
    assert w.partner_credit(RES)["RemainingCredit"] == D(500)
    code = error_code(w.own, "operator", "SettlePartnerBill", {"PartnerUin": RES, "Month": month})
    assert code == "FailedOperation.BillConfirmed"
    # A second-level reseller confirms its customer's bill; the distributor it charged is
    # settled by the operator.
    assert w.own(SUB, "ConfirmBill", {"ClientUin": C_SUB, "Month": month}) == {"ReturnedCredit": 20}
    assert w.own("operator", "SettlePartnerBill", {"PartnerUin": DIST, "Month": month}) == {"ReturnedCredit": 20}
    assert w.customer_credit(C_SUB) == (D(100), D(100))
    assert w.partner_credit(DIST)["RemainingCredit"] == D(1000)
    # The rest of RES's customers: C_RES_B's 7.
    assert w.own(RES, "ConfirmBill", {"ClientUin": C_RES_B, "Month": month}) == {"ReturnedCredit": 7}

    # A purchase now belongs to the new month, which is not final.
    buy(w, C_RES, "b-5", C_RES, 5)
    new_month = later.strftime("%Y-%m")
    assert new_month != month
    code = error_code(w.own, RES, "ConfirmBill", {"ClientUin": C_RES, "Month": new_month})
    assert code == "FailedOperation.BillNotFinal"
    assert w.customer_credit(C_RES) == (D(100), D(95))


@pytest.mark.parametrize(
    "caller, params, code",
    [
        (RES, {"ClientUin": C_RES}, "MissingParameter"),
        (RES, {"ClientUin": C_RES, "Month": "2026-1"}, "InvalidParameterValue"),
        (RES, {"ClientUin": C_RES, "Month": "2026-13"}, "InvalidParameterValue"),
        (RES, {"ClientUin": C_RES, "Month": 202601}, "InvalidParameter"),
        (RES, {"ClientUin": RES, "Month": "2026-01"}, "InvalidParameterValue.InvalidUin"),
        (RES, {"ClientUin": C_RES, "Month": "2026-01", "Force": True}, "UnknownParameter"),
    ],
)
def test_confirm_bill_refuses_bad_input(world, caller, params, code):
    before = world.snapshot()
    assert error_code(world.own, caller, "ConfirmBill", params) == code
    assert world.snapshot() == before


# ----- the adjustable clock ------------------------------------------------------------------


def test_advance_clock_needs_the_setting(world):
    with pytest.raises(TencentCloudSDKException) as raised:
        world.own("operator", "AdvanceClock", {"Seconds": 60})
    assert raised.value.code == "UnsupportedOperation"
    assert "adjustable_clock = true" in raised.value.message


def test_advance_clock_is_the_operators_and_only_forward(rehearsal):
    before = rehearsal.snapshot()
    assert error_code(rehearsal.own, RES, "AdvanceClock", {"Seconds": 60}) == "UnauthorizedOperation.UinNoAuth"
    for seconds in (0, -1, 31_536_001):
        assert error_code(rehearsal.own, "operator", "AdvanceClock", {"Seconds": seconds}) == "InvalidParameterValue"
    assert error_code(rehearsal.own, "operator", "AdvanceClock", {"Seconds": "60"}) == "InvalidParameter"
    assert error_code(rehearsal.own, "operator", "AdvanceClock", {}) == "MissingParameter"
    first = advance(rehearsal, 1)
    second = advance(rehearsal, 3600)
    assert datetime.timedelta(seconds=3600) <= second - first < datetime.timedelta(seconds=3630)
    assert rehearsal.snapshot() == before


# ----- credit warnings -----------------------------------------------------------------------


def test_credit_warning_thresholds(world):
    assert world.own(RES, "SetCreditWarning", {"ClientUin": C_RES, "RemainingPercent": 30}) == {}
    assert world.own(C_RES, "SetCreditWarning", {"ClientUin": C_RES, "RemainingAmount": 12.5}) == {}
    assert world.own("operator", "SetCreditWarning", {"ClientUin": C_RES_B, "RemainingPercent": 0.25}) == {}
    # Neither: the caller's threshold is removed.
    assert world.own(RES, "SetCreditWarning", {"ClientUin": C_RES}) == {}


@pytest.mark.parametrize(
    "caller, params, code",
    [
        (RES, {"RemainingPercent": 10}, "MissingParameter"),
        (RES, {"ClientUin": C_RES, "RemainingPercent": 10, "RemainingAmount": 5}, "InvalidParameterValue"),
        (RES, {"ClientUin": C_RES, "RemainingPercent": 100.01}, "InvalidParameterValue"),
        (RES, {"ClientUin": C_RES, "RemainingPercent": -1}, "InvalidParameterValue"),
        (RES, {"ClientUin": C_RES, "RemainingPercent": 12.345}, "InvalidParameterValue"),
        (RES, {"ClientUin": C_RES, "RemainingPercent": "10"}, "InvalidParameter"),
        (RES, {"ClientUin": C_RES, "RemainingAmount": -0.01}, "InvalidParameterValue"),
        (RES, {"ClientUin": C_RES, "RemainingAmount": 0.123456789}, "InvalidParameterValue"),
        (RES2, {"ClientUin": C_RES, "RemainingAmount": 5}, "UnauthorizedOperation.NotCustomerUin"),
        (C_RES_B, {"ClientUin": C_RES, "RemainingAmount": 5}, "UnauthorizedOperation.NotCustomerUin"),
        (RES, {"ClientUin": RES, "RemainingAmount": 5}, "InvalidParameterValue.InvalidUin"),
        (RES, {"ClientUin": 2_999_999, "RemainingAmount": 5}, "ResourceNotFound.ClientUin"),
    ],
)
def test_credit_warning_refusals_change_nothing(world, caller, params, code):
    before = world.snapshot()
    assert error_code(world.own, caller, "SetCreditWarning", params) == code
    assert world.snapshot() == before
