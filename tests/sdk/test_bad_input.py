"""Bad input: every bad request gets its error code, and nothing changes (read back through
the queries). What the SDK cannot send (malformed JSON, old timestamps, no signature) goes
as a request signed by hand with the SDK's own `Sign.sign_tc3`."""

import json
import time

import pytest

from conftest import (
    C_RES,
    C_RES2,
    OPERATOR,
    RES,
    World,
    error_code,
    key_of,
    raw_error,
    toml_config,
)

ALLOCATE = "AllocateCustomerCredit"


def test_the_hand_signed_request_is_right(world):
    """The control for the raw requests below: signed this way, a request passes."""
    answer = world.raw(ALLOCATE, json.dumps({"ClientUin": C_RES, "AddedCredit": 1}), caller=RES)
    assert (answer["TotalCredit"], answer["RemainingCredit"]) == (101, 101)
    assert answer["RequestId"]
    assert world.customer_credit(C_RES) == (101, 101)
    # 200 s off is within the 300 s allowed.
    answer = world.raw(ALLOCATE, json.dumps({"ClientUin": C_RES, "AddedCredit": 1}), caller=RES, timestamp=int(time.time()) - 200)
    assert answer["TotalCredit"] == 102


@pytest.mark.parametrize(
    "body, code",
    [
        ('{"ClientUin": 2000001, "AddedCredit": ', "InvalidParameter"),
        ("{'ClientUin': 2000001, 'AddedCredit': 5}", "InvalidParameter"),
        ('{"ClientUin": 2000001, "AddedCredit": 5}}', "InvalidParameter"),
        ('[{"ClientUin": 2000001, "AddedCredit": 5}]', "InvalidParameter"),
        ('"ClientUin"', "InvalidParameter"),
        (b'{"ClientUin": 2000001, "AddedCredit": 5, "Remark": "\xff"}', "InvalidParameter"),
        # Well-formed, but wrong:
        ('{"ClientUin": 2000001}', "MissingParameter"),
        ('{"AddedCredit": 5}', "MissingParameter"),
        ('{"ClientUin": 2000001, "AddedCredit": 5, "Colour": "red"}', "UnknownParameter"),
        ('{"ClientUin": "2000001", "AddedCredit": 5}', "InvalidParameter"),
        ('{"ClientUin": 2000001.5, "AddedCredit": 5}', "InvalidParameter"),
        ('{"ClientUin": 2000001, "AddedCredit": "5"}', "InvalidParameter"),
        ('{"ClientUin": 2000001, "AddedCredit": true}', "InvalidParameter"),
        ('{"ClientUin": 2000001, "AddedCredit": 5, "Remark": 7}', "InvalidParameter"),
        ('{"ClientUin": 2000001, "AddedCredit": 0.123456789}', "InvalidParameterValue"),
        ('{"ClientUin": 2000001, "AddedCredit": 1e400}', "InvalidParameterValue"),
        ('{"ClientUin": 2000001, "AddedCredit": 10000000000000}', "InvalidParameterValue"),
        ('{"ClientUin": 0, "AddedCredit": 5}', "InvalidParameterValue"),
        ('{"ClientUin": -2000001, "AddedCredit": 5}', "InvalidParameterValue"),
    ],
)
def test_bad_parameters_are_refused_and_change_nothing(world, body, code):
    before = world.snapshot()
    assert raw_error(world.raw(ALLOCATE, body, caller=RES)) == code
    assert world.snapshot() == before


def test_bad_parameters_through_the_sdk(world):
    """The same refusals as the official clients meet them."""
    before = world.snapshot()
    client = world.common(RES)
    assert error_code(client.call_json, ALLOCATE, {"ClientUin": C_RES}) == "MissingParameter"
    assert error_code(client.call_json, ALLOCATE, {"ClientUin": C_RES, "AddedCredit": 5, "Colour": 1}) == "UnknownParameter"
    assert error_code(client.call_json, ALLOCATE, {"ClientUin": str(C_RES), "AddedCredit": 5}) == "InvalidParameter"
    assert error_code(client.call_json, ALLOCATE, {"ClientUin": C_RES, "AddedCredit": 0.123456789}) == "InvalidParameterValue"
    # The typed client: a missing field is left out of the request.
    assert error_code(world.up, RES, ALLOCATE, {"ClientUin": C_RES}) == "MissingParameter"
    assert error_code(world.up, RES, ALLOCATE, {"ClientUin": C_RES, "AddedCredit": 1.000000001}) == "InvalidParameterValue"
    # The same on the engine's own actions.
    purchase = {"PurchaseId": "p", "ClientUin": C_RES, "Amount": 1}
    op = world.common("operator")
    assert error_code(op.call_json, "CreatePurchase", {**purchase, "Amount": 0.000000001}) == "InvalidParameterValue"
    assert error_code(op.call_json, "CreatePurchase", {**purchase, "ClientUin": "2000001"}) == "InvalidParameter"
    assert error_code(op.call_json, "CreatePurchase", {**purchase, "Shop": "x"}) == "UnknownParameter"
    assert error_code(op.call_json, "CreatePurchase", {"ClientUin": C_RES, "Amount": 1}) == "MissingParameter"
    assert error_code(op.call_json, "CreatePurchases", {"Purchases": [{**purchase, "Amount": "1"}]}) == "InvalidParameter"
    assert error_code(op.call_json, "CreatePurchases", {"Purchases": []}) == "InvalidParameterValue.Purchases"
    assert error_code(op.call_json, "GrantPartnerCredit", {"PartnerUin": RES, "Credit": 1.123456789}) == "InvalidParameterValue"
    assert world.snapshot() == before
    # None of the refused purchase ids was taken.
    assert world.own("operator", "CreatePurchase", purchase)["Status"] == "Committed"


def test_malformed_json_on_an_own_action(world):
    before = world.snapshot()
    body = '{"PurchaseId": "p-bad", "ClientUin": 2000001, "Amount": 5'
    assert raw_error(world.raw("CreatePurchase", body)) == "InvalidParameter"
    assert world.snapshot() == before
    answer = world.own("operator", "CreatePurchase", {"PurchaseId": "p-bad", "ClientUin": C_RES, "Amount": 5})
    assert answer["ClientRemainingCredit"] == 95


def test_oversized_body_is_refused_and_changes_nothing(start_server):
    world = World(start_server(toml_config(http={"body_limit": 1024}))).setup()
    before = world.snapshot()
    body = json.dumps({"ClientUin": C_RES, "AddedCredit": 7})
    assert raw_error(world.raw(ALLOCATE, body + " " * 2000, caller=RES)) == "RequestSizeLimitExceeded"
    assert world.snapshot() == before
    # At the limit it passes.
    answer = world.raw(ALLOCATE, body + " " * (1024 - len(body)), caller=RES)
    assert answer["TotalCredit"] == 107
    # The SDK meets the same limit.
    client = world.common(RES)
    code = error_code(client.call_json, ALLOCATE, {"ClientUin": C_RES, "AddedCredit": 7, "Remark": "x" * 2000})
    assert code == "RequestSizeLimitExceeded"
    assert world.customer_credit(C_RES) == (107, 107)


def test_wrong_secret_key(world):
    before = world.snapshot()
    wrong = (key_of(RES)[0], "not-the-key")
    assert error_code(world.up, wrong, ALLOCATE, {"ClientUin": C_RES, "AddedCredit": 5}) == "AuthFailure.SignatureFailure"
    assert error_code(world.own, (OPERATOR[0], "nope"), "GrantPartnerCredit", {"PartnerUin": RES, "Credit": 5}) == (
        "AuthFailure.SignatureFailure"
    )
    assert world.snapshot() == before


def test_tampered_body(world):
    before = world.snapshot()
    signed = json.dumps({"ClientUin": C_RES, "AddedCredit": 1}).encode()
    sent = json.dumps({"ClientUin": C_RES, "AddedCredit": 99}).encode()
    assert raw_error(world.raw(ALLOCATE, sent, caller=RES, sign_body=signed)) == "AuthFailure.SignatureFailure"
    assert world.snapshot() == before


@pytest.mark.parametrize("offset", [-400, 400, -301 - 3600])
def test_expired_timestamp(world, offset):
    before = world.snapshot()
    body = json.dumps({"ClientUin": C_RES, "AddedCredit": 5})
    answer = world.raw(ALLOCATE, body, caller=RES, timestamp=int(time.time()) + offset)
    assert raw_error(answer) == "AuthFailure.SignatureExpire"
    assert world.snapshot() == before


def test_unknown_secret_id(world):
    before = world.snapshot()
    stranger = ("AKIDnobodyknows", "whatever")
    assert error_code(world.up, stranger, ALLOCATE, {"ClientUin": C_RES, "AddedCredit": 5}) == "AuthFailure.SecretIdNotFound"
    assert error_code(world.own, stranger, "Ping") == "AuthFailure.SecretIdNotFound"
    assert world.snapshot() == before


def test_no_authorization(world):
    before = world.snapshot()
    body = json.dumps({"ClientUin": C_RES, "AddedCredit": 5})
    assert raw_error(world.raw(ALLOCATE, body, caller=RES, authorization=False)) == "AuthFailure.InvalidAuthorization"
    assert world.snapshot() == before


def test_unknown_action_and_missing_headers(world):
    before = world.snapshot()
    assert error_code(world.common(RES).call_json, "AllocateEverything", {}) == "InvalidAction"
    assert raw_error(world.raw(None, "{}", caller=RES)) == "MissingParameter"
    assert raw_error(world.raw(ALLOCATE, json.dumps({"ClientUin": C_RES, "AddedCredit": 5}), caller=RES, version=None)) == (
        "MissingParameter"
    )
    assert world.snapshot() == before


def test_operator_only_actions(world):
    before = world.snapshot()
    assert error_code(world.own, RES, "GrantPartnerCredit", {"PartnerUin": RES, "Credit": 1000}) == (
        "UnauthorizedOperation.UinNoAuth"
    )
    assert error_code(world.own, RES, "CreatePartner", {"Kind": "Reseller"}).startswith("UnauthorizedOperation")
    assert error_code(world.own, C_RES, "CreateClient", {"ParentUin": RES, "Name": "x"}).startswith(
        "UnauthorizedOperation"
    )
    assert world.snapshot() == before


def test_not_customer_uin(world):
    before = world.snapshot()
    assert error_code(world.up, RES, ALLOCATE, {"ClientUin": C_RES2, "AddedCredit": 5}) == (
        "UnauthorizedOperation.NotCustomerUin"
    )
    assert error_code(world.up, RES, "ForceQN", {"ClientUin": C_RES2, "Type": 2}) == (
        "UnauthorizedOperation.NotCustomerUin"
    )
    assert world.snapshot() == before
