"""Credit allocation through the SDK's typed client: AllocateCustomerCredit and
AllocateCreditPool within their bounds, the queries that read them back, and the documented
per-second quotas."""

import json
import time

from tencentcloud.intlpartnersmgt.v20220928 import models

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
    World,
    error_code,
    toml_config,
)

OUT_OF_RANGE = "InvalidParameterValue.CreditAmountOutOfRange"


def allocate(world, partner, customer, credit, **extra):
    return world.up(partner, "AllocateCustomerCredit", {"ClientUin": customer, "AddedCredit": credit, **extra})


def test_typed_client_models(world):
    """The SDK's own request and response models, field by field."""
    request = models.AllocateCustomerCreditRequest()
    request.ClientUin = C_RES
    request.AddedCredit = 12.5
    request.Remark = "top-up"
    response = world.client(RES).AllocateCustomerCredit(request)
    assert isinstance(response, models.AllocateCustomerCreditResponse)
    assert (response.TotalCredit, response.RemainingCredit) == (112.5, 112.5)
    assert response.RequestId

    response = world.client(RES).QueryPartnerCredit(models.QueryPartnerCreditRequest())
    assert (response.TotalCredit, response.AllocatedCredit, response.RemainingCredit) == (500, 162.5, 500)


def test_allocation_over_the_partners_allocable_is_refused_and_changes_nothing(world):
    # RES: total 500, 150 allocated: 350 allocable.
    before = world.snapshot()
    assert error_code(allocate, world, RES, C_RES, 350.01) == OUT_OF_RANGE
    assert world.snapshot() == before
    assert allocate(world, RES, C_RES, 350) == {"TotalCredit": 450, "RemainingCredit": 450}
    assert error_code(allocate, world, RES, C_RES_B, 0.01) == OUT_OF_RANGE
    credit = world.partner_credit(RES)
    assert (credit["TotalCredit"], credit["AllocatedCredit"], credit["RemainingCredit"]) == (D(500), D(500), D(500))
    assert (credit["CustomerTotalCredit"], credit["CustomerRemainingCredit"]) == (D(500), D(500))


def test_repossession_over_the_customers_available_is_refused_and_changes_nothing(world):
    world.own(C_RES, "CreatePurchase", {"PurchaseId": "p-30", "ClientUin": C_RES, "Amount": 30})
    # C_RES: total 100, 30 used: 70 available.
    before = world.snapshot()
    assert error_code(allocate, world, RES, C_RES, -70.01) == OUT_OF_RANGE
    assert world.snapshot() == before
    assert allocate(world, RES, C_RES, -70) == {"TotalCredit": 30, "RemainingCredit": 0}
    assert world.customer_credit(C_RES) == (D(30), D(0))
    credit = world.partner_credit(RES)
    # The repossessed 70 is allocable again; the 30 spent stays spent.
    assert (credit["TotalCredit"], credit["AllocatedCredit"], credit["RemainingCredit"]) == (D(500), D(80), D(470))
    assert error_code(world.own, C_RES, "CreatePurchase", {"PurchaseId": "p-1", "ClientUin": C_RES, "Amount": 1}) == (
        "FailedOperation.InsufficientClientCredit"
    )


def test_allocations_are_recorded(world):
    allocate(world, RES, C_RES, 25.5, Remark="second")
    history = world.up(RES, "QueryCreditAllocationHistory", {"ClientUin": C_RES, "Page": 1, "PageSize": 10})
    assert history["Total"] == 2
    rows = sorted(history["History"], key=lambda row: D(row["AllocatedCredit"]))
    assert [(D(r["Credit"]), D(r["AllocatedCredit"]), D(r["ClientCreditAfter"])) for r in rows] == [
        (D(100), D(100), D(100)),
        (D("25.5"), D("125.5"), D("125.5")),
    ]
    assert rows[1]["Remark"] == "second"
    assert all(row["AllocatedTime"] and row["Operator"] for row in rows)


def test_pool_allocation(world):
    # DIST: total 1000, 300 in SUB's pool; SUB gave 100 of it to C_SUB.
    assert world.up(DIST, "AllocateCreditPool", {"SubAgentUin": SUB, "Credit": 50}) == {
        "TotalCredit": 350,
        "RemainingCredit": 250,
    }
    before = world.snapshot()
    # Over the distributor's allocable (1000 - 350).
    code = error_code(world.up, DIST, "AllocateCreditPool", {"SubAgentUin": SUB, "Credit": 650.01})
    assert code == OUT_OF_RANGE
    # The second-level reseller allocates only what is left in its pool.
    assert error_code(allocate, world, SUB, C_SUB, 250.01) == OUT_OF_RANGE
    # A pool repossession cannot take back what was given to customers.
    code = error_code(world.up, DIST, "AllocateCreditPool", {"SubAgentUin": SUB, "Credit": -250.01})
    assert code == OUT_OF_RANGE
    assert world.snapshot() == before
    assert allocate(world, SUB, C_SUB, 250) == {"TotalCredit": 350, "RemainingCredit": 350}
    assert world.up(DIST, "AllocateCreditPool", {"SubAgentUin": SUB, "Credit": 650}) == {
        "TotalCredit": 1000,
        "RemainingCredit": 650,
    }
    credit = world.partner_credit(DIST)
    assert (credit["TotalCredit"], credit["AllocatedCredit"], credit["RemainingCredit"]) == (D(1000), D(1000), D(1000))


def test_pool_allocation_needs_a_second_level_reseller_of_ones_own(world):
    before = world.snapshot()
    # RES is no second-level reseller; a reseller has no pool to give.
    assert error_code(world.up, DIST, "AllocateCreditPool", {"SubAgentUin": RES, "Credit": 1}).startswith(
        ("FailedOperation.InvalidSubAgentUin", "UnauthorizedOperation")
    )
    assert error_code(world.up, RES, "AllocateCreditPool", {"SubAgentUin": SUB, "Credit": 1}).startswith(
        ("UnauthorizedOperation", "FailedOperation")
    )
    assert world.snapshot() == before


def test_a_partner_cannot_touch_another_partners_customer(world):
    before = world.snapshot()
    assert error_code(allocate, world, RES, C_RES2, 1) == "UnauthorizedOperation.NotCustomerUin"
    assert error_code(allocate, world, RES2, C_RES, -1) == "UnauthorizedOperation.NotCustomerUin"
    code = error_code(world.up, RES, "QueryCreditByUinList", {"UinList": [C_RES, C_RES2]})
    assert code.startswith("UnauthorizedOperation"), code
    assert world.snapshot() == before


def test_customer_queries(world):
    world.own(C_RES_B, "CreatePurchase", {"PurchaseId": "p", "ClientUin": C_RES_B, "Amount": 12.5})
    listed = world.up(RES, "QueryCustomersCredit", {})
    assert listed["Total"] == 2
    rows = {row["ClientUin"]: row for row in listed["Data"]}
    assert set(rows) == {C_RES, C_RES_B}
    assert (D(rows[C_RES]["Credit"]), D(rows[C_RES]["RemainingCredit"])) == (D(100), D(100))
    assert (D(rows[C_RES_B]["Credit"]), D(rows[C_RES_B]["RemainingCredit"])) == (D(50), D("37.5"))
    data = world.up(RES, "QueryCreditByUinList", {"UinList": [C_RES_B, C_RES]})["Data"]
    assert {row["Uin"]: (D(row["TotalCredit"]), D(row["RemainingCredit"])) for row in data} == {
        C_RES: (D(100), D(100)),
        C_RES_B: (D(50), D("37.5")),
    }
    quota = world.up(C_RES_B, "QueryCustomerBillingQuota")["Data"]
    assert (D(quota["TotalCredit"]), D(quota["RemainingCredit"]), quota["Force"]) == (D(50), D("37.5"), 0)


# ----- rate limits: the documented quotas (no overrides) --------------------------------------


# Fresh resellers with a customer each, whose budgets no earlier call has touched.
FRESH = [(1_000_100 + n, 2_000_100 + n) for n in range(6)]


def fresh_reseller(world, n):
    partner, customer = FRESH[n]
    world.own("operator", "CreatePartner", {"Kind": "Reseller", "Uin": partner})
    world.own("operator", "CreateClient", {"ParentUin": partner, "Uin": customer, "Name": "fresh"})
    world.own("operator", "GrantPartnerCredit", {"PartnerUin": partner, "Credit": 100})
    return partner, customer


def burst(world, calls, action, params, seconds, last=None):
    """Calls `calls` + 1 times as fresh resellers until one burst fits in `seconds`: the
    answers of the first `calls` and the error code of the last."""
    for n in range(3):
        partner, customer = fresh_reseller(world, n)
        client = world.client(partner)
        request = getattr(models, f"{action}Request")()
        request.from_json_string(json.dumps({"ClientUin": customer, **params}))
        start = time.monotonic()
        answers = [getattr(client, action)(request) for _ in range(calls)]
        if last:
            request.from_json_string(json.dumps({"ClientUin": customer, **last}))
        code = error_code(getattr(client, action), request)
        if time.monotonic() - start < seconds:
            return partner, customer, answers, code
    raise AssertionError(f"could not send {calls + 1} calls within {seconds} s")


def test_the_sixth_allocation_in_a_burst_is_refused_and_changes_nothing(start_server):
    world = World(start_server(toml_config(extra_uins=[uin for pair in FRESH for uin in pair]))).setup()
    # 5 per second: a burst of 5, then one more every 200 ms.
    partner, customer, answers, code = burst(world, 5, "AllocateCustomerCredit", {"AddedCredit": 1}, 0.15)
    assert [answer.TotalCredit for answer in answers] == [1, 2, 3, 4, 5]
    assert code == "RequestLimitExceeded"
    # Another partner is unaffected meanwhile.
    assert allocate(world, RES2, C_RES2, 1) == {"TotalCredit": 41, "RemainingCredit": 41}
    # The refused call changed nothing.
    data = world.up(partner, "QueryCreditByUinList", {"UinList": [customer]})["Data"]
    assert (D(data[0]["TotalCredit"]), D(data[0]["RemainingCredit"])) == (D(5), D(5))
    assert world.partner_credit(partner)["AllocatedCredit"] == D(5)


def test_force_qn_has_a_quota_of_two(start_server):
    world = World(start_server(toml_config(extra_uins=[uin for pair in FRESH for uin in pair]))).setup()
    # 2 per second: the third call at once is refused, and does not suspend.
    partner, customer, _, code = burst(world, 2, "ForceQN", {"Type": 0}, 0.4, last={"Type": 2})
    assert code == "RequestLimitExceeded"
    assert world.up(partner, "AllocateCustomerCredit", {"ClientUin": customer, "AddedCredit": 10})
    answer = world.own(customer, "CreatePurchase", {"PurchaseId": "p", "ClientUin": customer, "Amount": 1})
    assert answer["Status"] == "Committed"


def test_unsupported_upstream_actions_answer_unsupported_operation(world):
    request = models.DescribeBillSummaryRequest()
    request.Month = "2026-01"
    code = error_code(world.client(RES).DescribeBillSummary, request)
    assert code == "UnsupportedOperation"
    assert error_code(world.up, RES, "DescribeBillDownloadUrl", {"Month": "2026-01", "FileType": "L1"}) == (
        "UnsupportedOperation"
    )
