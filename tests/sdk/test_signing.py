"""Every way the Python SDK signs and sends a request: TC3 by POST (the rest of the suite) and
by GET, and signature v1 (HmacSHA256, HmacSHA1) by POST and by GET. Lists and objects travel
flattened (`UinList.0=...`) by v1 and by GET, and booleans as the SDK writes them in a form
(`True`). A wrong key is refused by each, and changes nothing."""

import pytest
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.intlpartnersmgt.v20220928 import intlpartnersmgt_client, models
from tencentcloud.common.common_client import CommonClient

from conftest import C_RES, RES, SERVICE, VERSION, Api, error_code

SIGNINGS = [
    ("TC3-HMAC-SHA256", "GET"),
    ("HmacSHA256", "POST"),
    ("HmacSHA256", "GET"),
    ("HmacSHA1", "POST"),
    ("HmacSHA1", "GET"),
]


def profile(world, sign_method, method) -> ClientProfile:
    http = HttpProfile(endpoint=world.server.host, reqTimeout=30, reqMethod=method)
    http.scheme = world.server.scheme
    return ClientProfile(signMethod=sign_method, httpProfile=http)


def typed(world, caller, sign_method, method):
    return intlpartnersmgt_client.IntlpartnersmgtClient(
        Api.credential(caller), "ap-singapore", profile(world, sign_method, method)
    )


def common(world, caller, sign_method, method):
    return CommonClient(
        SERVICE, VERSION, Api.credential(caller), "ap-singapore", profile=profile(world, sign_method, method)
    )


@pytest.mark.parametrize("sign_method,method", SIGNINGS)
def test_a_purchase_and_the_books_by_every_signing(world, sign_method, method):
    remaining_before = world.customer_credit(C_RES)[1]
    answer = common(world, C_RES, sign_method, method).call_json(
        "CreatePurchase",
        {"PurchaseId": f"py-{sign_method}-{method}", "ClientUin": C_RES, "Amount": 2.5, "ProductCode": "cvm s5/large"},
    )["Response"]
    assert (answer["Status"], answer["ChargedUin"], answer["ClientCharge"]) == ("Committed", RES, 2.5)
    request = models.QueryCreditByUinListRequest()
    request.UinList = [C_RES]
    listed = typed(world, RES, sign_method, method).QueryCreditByUinList(request)
    assert [(row.Uin, row.RemainingCredit) for row in listed.Data] == [(C_RES, float(remaining_before) - 2.5)]
    # A boolean, which a form carries as `True`.
    assert common(world, RES, sign_method, method).call_json("SetTrialVoucherPriority", {"Enabled": True})[
        "Response"
    ].keys() == {"RequestId"}


@pytest.mark.parametrize("sign_method,method", SIGNINGS)
def test_a_wrong_key_is_refused_by_every_signing(world, sign_method, method):
    before = world.snapshot()
    client = common(world, ("AKIDtest2000001", "not-the-secret-key"), sign_method, method)
    purchase = {"PurchaseId": "py-wrong-key", "ClientUin": C_RES, "Amount": 1}
    assert error_code(client.call_json, "CreatePurchase", purchase) == "AuthFailure.SignatureFailure"
    unknown = common(world, ("AKIDnobody", "some-key"), sign_method, method)
    assert error_code(unknown.call_json, "CreatePurchase", purchase) == "AuthFailure.SecretIdNotFound"
    assert world.snapshot() == before
