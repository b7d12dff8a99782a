"""The server as a test double, through the official Python SDK: injected faults (errors,
delays, dropped connections) as the SDK meets them, `/metrics` read by Prometheus's own
parser, `/health` during a start, and `ResetState`."""

from __future__ import annotations

import json
import math
import subprocess
import time

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from tencentcloud.common.common_client import CommonClient
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.common.retry import StandardRetryer

from conftest import (
    C_RES,
    C_RES2,
    C_RES_B,
    C_SUB,
    CUSTOMERS,
    DIST,
    RES,
    RES2,
    SERVICE,
    SUB,
    UNTHROTTLED,
    VERSION,
    D,
    World,
    binary,
    error_code,
    toml_config,
)

# ----- helpers -------------------------------------------------------------------------------


def metrics(server) -> dict:
    """Every sample of `GET /metrics`, parsed by prometheus_client: {(name, labels): value}."""
    response = requests.get(f"http://{server.host}/metrics", timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def counter(samples: dict, name: str, **labels) -> float:
    """One sample's value; a counter never written is 0."""
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def binomial_bounds(n: int, p: float, sigmas: float = 5.0) -> tuple[float, float]:
    mean, sd = n * p, math.sqrt(n * p * (1 - p))
    return mean - sigmas * sd, mean + sigmas * sd


def split_mix64(z: int) -> int:
    """The server's fault generator (src/api/faults.rs), to pick a seed whose draws are known."""
    mask = (1 << 64) - 1
    z = (z + 0x9E3779B97F4A7C15) & mask
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
    return z ^ (z >> 31)


def fires(seed: int, draw: int, probability: float) -> bool:
    value = split_mix64((seed + draw * 0x9E3779B97F4A7C15) & ((1 << 64) - 1))
    return value < int(probability * 2.0**64)


def purchase(world, caller, purchase_id, customer=C_RES, amount="0.01"):
    return world.own(caller, "CreatePurchase", {"PurchaseId": purchase_id, "ClientUin": customer, "Amount": float(amount)})


def set_faults(world, *faults):
    assert world.own("operator", "SetFaults", {"Faults": list(faults)}) == {}


def never_made(world, purchase_id) -> bool:
    """Whether the server knows no purchase of this id (asked without changing anything)."""
    code = error_code(world.own, "operator", "CommitPurchase", {"PurchaseId": purchase_id})
    return code == "ResourceNotFound.PurchaseId"


# ----- faults --------------------------------------------------------------------------------


def test_an_injected_internal_error_hits_within_binomial_bounds_and_changes_nothing(world):
    before = metrics(world.server)
    set_faults(world, {"Action": "CreatePurchase", "CallerUin": C_RES, "Probability": 0.3, "Code": "InternalError", "Seed": 7})
    total, remaining = world.customer_credit(C_RES)
    other = world.customer_credit(C_RES_B)
    faulted, committed = [], []
    for index in range(1000):
        purchase_id = f"fault-{index}"
        try:
            answer = purchase(world, C_RES, purchase_id)
            assert answer["Status"] == "Committed", answer
            committed.append(purchase_id)
        except TencentCloudSDKException as error:
            # The SDK raises the API's code as its own exception, as for any error answer.
            assert error.code == "InternalError", (error.code, error.message)
            assert "injected by a fault" in error.message
            assert error.requestId
            faulted.append(purchase_id)
    low, high = binomial_bounds(1000, 0.3)
    assert low <= len(faulted) <= high, (len(faulted), low, high)
    # Only the committed purchases changed the customer's credit, and nothing else moved.
    assert world.customer_credit(C_RES) == (total, remaining - D("0.01") * len(committed))
    assert world.customer_credit(C_RES_B) == other
    # A faulted purchase's id is still free: the engine never saw it.
    for purchase_id in faulted[:20]:
        assert never_made(world, purchase_id), purchase_id
    # Prometheus's parser reads counters equal to what this test did.
    after = metrics(world.server)
    delta = lambda name, **labels: counter(after, name, **labels) - counter(before, name, **labels)  # noqa: E731
    requests_total = "partner_credit_requests_total"
    assert delta(requests_total, action="CreatePurchase", code="InternalError") == len(faulted)
    assert delta(requests_total, action="CreatePurchase", code="Success") == len(committed)
    assert delta(requests_total, action="CommitPurchase", code="ResourceNotFound.PurchaseId") == 20
    assert delta(requests_total, action="SetFaults", code="Success") == 1
    assert delta("partner_credit_faults_injected_total", kind="error") == len(faulted)
    assert delta("partner_credit_faults_injected_total", kind="delay") == 0
    assert delta("partner_credit_purchases_committed_total") == len(committed)
    # An injected error is not a refusal of the engine's.
    assert delta("partner_credit_purchases_refused_total", reason="InternalError") == 0
    assert delta("partner_credit_request_duration_seconds_count", action="CreatePurchase") == 1000
    assert counter(after, "partner_credit_open_reservations") == 0

    # The same seed set again makes the same decisions for the same sequence of requests.
    set_faults(world, {"Action": "CreatePurchase", "CallerUin": C_RES, "Probability": 0.3, "Code": "InternalError", "Seed": 7})
    again = []
    for index in range(100):
        try:
            purchase(world, C_RES, f"again-{index}")
        except TencentCloudSDKException:
            again.append(f"fault-{index}")
    assert again == [purchase_id for purchase_id in faulted if int(purchase_id.split("-")[1]) < 100]


def test_a_delay_shows_in_the_measured_latency_and_the_request_is_carried_out(world):
    set_faults(world, {"Action": "CreatePurchase", "CallerUin": C_RES, "Probability": 1, "DelayMs": 300})
    _, remaining = world.customer_credit(C_RES)
    started = time.monotonic()
    answer = purchase(world, C_RES, "slow-1", amount="2")
    elapsed = time.monotonic() - started
    assert elapsed >= 0.3, elapsed
    assert answer["Status"] == "Committed"
    assert world.customer_credit(C_RES)[1] == remaining - 2
    samples = metrics(world.server)
    assert counter(samples, "partner_credit_faults_injected_total", kind="delay") == 1
    # The server's own histogram saw at least the delay: no request of 0.25 s or less.
    count = counter(samples, "partner_credit_request_duration_seconds_count", action="CreatePurchase")
    quick = counter(samples, "partner_credit_request_duration_seconds_bucket", action="CreatePurchase", le="0.25")
    assert (count, quick) == (1, 0)


def profile(world, retryer=None) -> ClientProfile:
    http = HttpProfile(endpoint=world.server.host, reqTimeout=30)
    http.scheme = "http"
    return ClientProfile(httpProfile=http, retryer=retryer)


def test_a_dropped_connection_is_reported_by_the_sdk_or_retried_when_it_retries(world):
    set_faults(world, {"Action": "CreatePurchase", "CallerUin": C_RES, "Probability": 1, "Drop": True})
    _, remaining = world.customer_credit(C_RES)
    # The SDK's default: no retry. It reports the connection closed without an answer.
    client = CommonClient(SERVICE, VERSION, world.credential(C_RES), "", profile=profile(world))
    with pytest.raises(TencentCloudSDKException) as raised:
        client.call_json("CreatePurchase", {"PurchaseId": "drop-1", "ClientUin": C_RES, "Amount": 3})
    assert raised.value.code == "ClientNetworkError", raised.value
    assert "without response" in raised.value.message
    assert world.customer_credit(C_RES)[1] == remaining
    assert never_made(world, "drop-1")

    # With its StandardRetryer, the SDK retries a network error. A seed whose draws are
    # drop, pass, pass: the first attempt is dropped, the second commits. The retryer of this
    # SDK version keeps the first error after a success, so it tries a third time (a repeat
    # of the purchase id, answered as the first time) and then raises that first error: the
    # purchase is made once, and the caller is told it failed. Idempotent purchase ids are
    # what keeps the books right.
    seed = next(seed for seed in range(10_000) if [fires(seed, draw, 0.5) for draw in range(3)] == [True, False, False])
    set_faults(world, {"Action": "CreatePurchase", "CallerUin": C_RES, "Probability": 0.5, "Drop": True, "Seed": seed})
    before = metrics(world.server)
    retrying = CommonClient(
        SERVICE, VERSION, world.credential(C_RES), "",
        profile=profile(world, StandardRetryer(max_attempts=3, backoff_fn=lambda attempt: 0)),
    )  # fmt: skip
    with pytest.raises(TencentCloudSDKException) as raised:
        retrying.call_json("CreatePurchase", {"PurchaseId": "drop-2", "ClientUin": C_RES, "Amount": 3})
    assert raised.value.code == "ClientNetworkError", raised.value
    assert world.customer_credit(C_RES)[1] == remaining - 3
    after = metrics(world.server)
    delta = lambda name, **labels: counter(after, name, **labels) - counter(before, name, **labels)  # noqa: E731
    assert delta("partner_credit_faults_injected_total", kind="drop") == 1
    assert delta("partner_credit_requests_total", action="CreatePurchase", code="Dropped") == 1
    assert delta("partner_credit_requests_total", action="CreatePurchase", code="Success") == 2
    # The repeat answered as the first purchase: it committed once, whatever the answers say.
    set_faults(world)
    repeat = purchase(world, C_RES, "drop-2", amount="3")
    assert repeat["Status"] == "Committed"
    assert world.customer_credit(C_RES)[1] == remaining - 3


def test_faults_from_the_configuration_and_their_actions_are_never_faulted(start_server):
    config = toml_config(quotas=UNTHROTTLED) + (
        '\n[[faults]]\naction = "*"\nprobability = 1\ncode = "FailedOperation.InsufficientPartnerCredit"\nseed = 3\n'
    )
    world = World(start_server(config))
    assert error_code(world.own, "operator", "Ping") == "FailedOperation.InsufficientPartnerCredit"
    assert world.own("operator", "DescribeFaults") == {
        "Faults": [{"Action": "*", "Probability": 1.0, "Code": "FailedOperation.InsufficientPartnerCredit", "Seed": 3}]
    }
    set_faults(world)
    assert world.own("operator", "Ping") == {}


# ----- health --------------------------------------------------------------------------------


def test_health_goes_from_503_to_200_while_the_world_is_imported(start_server, tmp_path):
    world_file = tmp_path / "world.json"
    written = subprocess.run(
        [binary(), "load", "--write-world", str(world_file), "--customers", "400000"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert written.returncode == 0, written.stderr
    config = toml_config().replace('listen = "127.0.0.1:0"\n', 'listen = "127.0.0.1:0"\nworld = "world.json"\n', 1)
    server = start_server(config)
    statuses, refused = [], None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        response = requests.get(f"http://{server.host}/health", timeout=10)
        statuses.append((response.status_code, response.json()["status"]))
        if response.status_code == 200:
            break
        if refused is None:
            # While it starts, an API request is refused and says why.
            refused = error_code(World(server).own, "operator", "Ping")
        time.sleep(0.005)
    assert statuses[0] == (503, "starting"), statuses[:3]
    assert statuses[-1] == (200, "ready"), statuses[-3:]
    assert all(status == (503, "starting") for status in statuses[:-1])
    assert refused == "ServiceUnavailable"
    assert World(server).own("operator", "Ping") == {}


# ----- reset ---------------------------------------------------------------------------------


def start_world_file(path):
    """The functional tests' world (see conftest.World) as a world file to import at start."""
    path.write_text(
        json.dumps(
            {
                "distributors": [{"uin": DIST, "name": "Dist", "credit": "1000"}],
                "second_level_resellers": [{"uin": SUB, "distributor": DIST, "credit": "300"}],
                "resellers": [{"uin": RES, "name": "Res", "credit": "500"}, {"uin": RES2, "credit": "200"}],
                "customers": [
                    {"uin": customer, "parent": parent, "name": f"customer {customer}", "credit": credit}
                    for (customer, parent), credit in zip(CUSTOMERS.items(), ("100", "50", "100", "40"))
                ],
            }
        )
    )


def everything(world) -> dict:
    """What the queries show of every account, with the histories and vouchers."""
    state = world.snapshot()
    for customer, partner in CUSTOMERS.items():
        state[("history", customer)] = world.up(
            partner, "QueryCreditAllocationHistory", {"ClientUin": customer, "Page": 1, "PageSize": 50}
        )
        state[("vouchers", customer)] = world.up(
            partner, "DescribeCustomerVoucherList", {"Page": 1, "PageSize": 100, "CustomerUin": customer}
        )
    return state


def test_reset_state_restores_exactly_the_start_world(start_server, tmp_path):
    start_world_file(tmp_path / "world.json")
    quotas = {**UNTHROTTLED, "DescribeCustomerVoucherList": None}
    config = toml_config(quotas=quotas).replace(
        'listen = "127.0.0.1:0"\n', 'listen = "127.0.0.1:0"\nworld = "world.json"\n', 1
    )
    world = World(start_server(config))
    deadline = time.monotonic() + 30
    while requests.get(f"http://{world.server.host}/health", timeout=10).status_code != 200:
        assert time.monotonic() < deadline, "not ready"
        time.sleep(0.05)
    start = everything(world)
    assert start[("uins", RES)]["Data"][0]["RemainingCredit"] is not None

    # A series of changes: purchases, a reservation, a voucher, allocations, a suspension.
    purchase(world, C_RES, "p-1", amount="10")
    purchase(world, "operator", "p-2", customer=C_SUB, amount="5")
    world.own(C_RES2, "ReservePurchase", {"PurchaseId": "r-1", "ClientUin": C_RES2, "Amount": 7, "TimeoutSeconds": 600})
    world.own("operator", "GrantVoucherQuota", {"PartnerUin": RES, "Quota": 50})
    world.own(RES, "IssueCustomerVoucher", {"CustomerUin": C_RES_B, "Amount": 12.5, "ExpireTime": "2099-01-01 00:00:00"})
    world.up(RES, "AllocateCustomerCredit", {"ClientUin": C_RES, "AddedCredit": 25})
    world.up(RES, "ForceQN", {"ClientUin": C_RES_B, "Type": 2})
    changed = everything(world)
    assert changed != start
    assert counter(metrics(world.server), "partner_credit_open_reservations") == 1

    assert world.own("operator", "ResetState", {"To": "StartWorld"}) == {"Accounts": 8}
    assert everything(world) == start
    # The purchase ids, the reservation and the voucher quota are gone with the rest.
    for purchase_id in ("p-1", "p-2", "r-1"):
        assert never_made(world, purchase_id), purchase_id
    assert counter(metrics(world.server), "partner_credit_open_reservations") == 0
    assert error_code(world.own, RES, "IssueCustomerVoucher", {"CustomerUin": C_RES, "Amount": 1, "ExpireTime": "2099-01-01 00:00:00"}) == "FailedOperation.InsufficientVoucherQuota"
    # The same id buys again, with other content than before: no conflict with the old one.
    assert purchase(world, C_RES, "p-1", amount="3")["Status"] == "Committed"

    assert world.own("operator", "ResetState", {"To": "Empty"}) == {"Accounts": 0}
    assert error_code(world.up, RES, "QueryPartnerCredit") == "ResourceNotFound.PartnerUin"
    assert world.own("operator", "ResetState", {"To": "StartWorld"}) == {"Accounts": 8}
    assert everything(world) == start
    samples = metrics(world.server)
    assert counter(samples, "partner_credit_state_resets_total", to="StartWorld") == 2
    assert counter(samples, "partner_credit_state_resets_total", to="Empty") == 1
    # Only the operator resets.
    assert error_code(world.own, RES, "ResetState", {"To": "Empty"}) == "UnauthorizedOperation.UinNoAuth"
    assert everything(world) == start


# ----- snapshots and the data directory --------------------------------------------------------


def test_save_and_load_snapshot_and_a_restart_keeps_the_state(start_server, tmp_path):
    quotas = {**UNTHROTTLED, "DescribeCustomerVoucherList": None}
    config = toml_config(quotas=quotas, engine={"data_dir": '"data"'})
    world = World(start_server(config)).setup()
    first = purchase(world, C_RES, "p-1", amount="10")
    world.own("operator", "GrantVoucherQuota", {"PartnerUin": RES, "Quota": 50})
    world.own(RES, "IssueCustomerVoucher", {"CustomerUin": C_RES_B, "Amount": 12.5, "ExpireTime": "2099-01-01 00:00:00"})
    seed = tmp_path / "seed.pcs"
    saved_bytes = world.own("operator", "SaveSnapshot", {"Path": str(seed)})["Bytes"]
    assert 0 < saved_bytes < seed.stat().st_size
    saved = everything(world)

    # Changes after the snapshot, then the snapshot back: they are gone, what it held is there.
    purchase(world, C_RES, "p-2", amount="5")
    world.up(RES, "AllocateCustomerCredit", {"ClientUin": C_RES, "AddedCredit": 25})
    assert everything(world) != saved
    assert world.own("operator", "LoadSnapshot", {"Path": str(seed)}) == {"Accounts": 8}
    assert everything(world) == saved
    assert never_made(world, "p-2")
    assert purchase(world, C_RES, "p-1", amount="10") == first

    # A damaged snapshot, a missing one, or a caller other than the operator changes nothing.
    damaged = tmp_path / "damaged.pcs"
    data = bytearray(seed.read_bytes())
    data[len(data) // 2] ^= 0x40
    damaged.write_bytes(bytes(data))
    assert error_code(world.own, "operator", "LoadSnapshot", {"Path": str(damaged)}).startswith("InvalidParameter")
    assert error_code(world.own, "operator", "LoadSnapshot", {"Path": str(tmp_path / "none.pcs")}).startswith("InvalidParameter")
    assert error_code(world.own, RES, "LoadSnapshot", {"Path": str(seed)}) == "UnauthorizedOperation.UinNoAuth"
    assert error_code(world.own, RES, "SaveSnapshot", {"Path": str(tmp_path / "x.pcs")}) == "UnauthorizedOperation.UinNoAuth"
    assert everything(world) == saved

    # The loaded state is the data directory's now: a restart recovers it.
    world.server.stop()
    again = World(start_server(config, name="again"))
    assert everything(again) == saved
    assert purchase(again, C_RES, "p-1", amount="10") == first
    assert never_made(again, "p-2")
