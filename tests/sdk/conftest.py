"""Fixtures for the end-to-end suite: the real `partner-credit serve` binary, driven only by
the official clients (the tencentcloud-sdk-python-intl-en SDK and the tccli-intl-en CLI).

The binary is taken from PARTNER_CREDIT_BIN (scripts/test sets it), else from target/release
or target/debug of this repository.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import select
import signal
import subprocess
import threading
import time
from decimal import Decimal
from pathlib import Path

import pytest
import requests
from tencentcloud.common import credential
from tencentcloud.common.common_client import CommonClient
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.common.sign import Sign
from tencentcloud.intlpartnersmgt.v20220928 import intlpartnersmgt_client, models

REPO = Path(__file__).resolve().parents[2]
SERVICE = "intlpartnersmgt"
VERSION = "2022-09-28"

# ----- accounts and keys ---------------------------------------------------------------------

OPERATOR = ("AKIDoperatorTEST", "operator-secret-key-TEST")

DIST = 1_000_001  # distributor
SUB = 1_000_002  # second-level reseller under DIST
RES = 1_000_003  # reseller
RES2 = 1_000_004  # another reseller
C_RES = 2_000_001  # customer of RES
C_RES_B = 2_000_004  # second customer of RES
C_SUB = 2_000_002  # customer of SUB (charges DIST)
C_RES2 = 2_000_003  # customer of RES2
NOBODY = 2_999_999  # never created

PARTNERS = (DIST, SUB, RES, RES2)
CUSTOMERS = {C_RES: RES, C_RES_B: RES, C_SUB: SUB, C_RES2: RES2}


def key_of(uin: int) -> tuple[str, str]:
    """The (SecretId, SecretKey) that acts as `uin` in every server the suite starts."""
    return (f"AKIDtest{uin}", f"secret-key-of-{uin}")


def D(value) -> Decimal:
    """An amount as an exact decimal (floats through their shortest repr)."""
    return Decimal(str(value))


HTTP_DEFAULTS = {
    "workers": 1,
    "body_limit": 10485760,
    "timestamp_skew_secs": 300,
    "keep_alive_secs": 75,
    "max_connections": 25000,
}


def toml_config(
    *,
    quotas: dict | None = None,
    http: dict | None = None,
    tls: tuple[str, str] | None = None,
    extra_uins=(),
    engine: dict | None = None,
) -> str:
    lines = ['listen = "127.0.0.1:0"', "", "[operator]"]
    lines += [f'secret_id = "{OPERATOR[0]}"', f'secret_key = "{OPERATOR[1]}"', ""]
    for uin in list(PARTNERS) + list(CUSTOMERS) + list(extra_uins):
        secret_id, secret_key = key_of(uin)
        lines += ["[[keys]]", f'secret_id = "{secret_id}"', f'secret_key = "{secret_key}"', f"uin = {uin}", ""]
    if tls:
        lines += ["[tls]", f'cert = "{tls[0]}"', f'key = "{tls[1]}"', ""]
    if quotas:
        lines.append("[quotas]")
        for action, value in quotas.items():
            lines.append(f'{action} = "none"' if value is None else f"{action} = {value}")
        lines.append("")
    if engine:
        lines.append("[engine]")
        for name, value in engine.items():
            lines.append(f"{name} = {str(value).lower() if isinstance(value, bool) else value}")
        lines.append("")
    # Every [http] setting the tests care about is written out.
    lines.append("[http]")
    for name, value in {**HTTP_DEFAULTS, **(http or {})}.items():
        lines.append(f"{name} = {value}")
    return "\n".join(lines) + "\n"


# Upstream actions the functional tests call many times a second: no quota there, so that
# only the rate-limit tests (which use the documented quotas) meet RequestLimitExceeded.
UNTHROTTLED = {
    name: None
    for name in (
        "AllocateCustomerCredit",
        "AllocateCreditPool",
        "ForceQN",
        "QueryPartnerCredit",
        "QueryCreditByUinList",
        "QueryCustomerBillingQuota",
        "QueryCustomersCredit",
        "QueryCreditAllocationHistory",
        "DescribeBillSummary",
    )
}

# ----- the binary ----------------------------------------------------------------------------


def binary() -> str:
    path = os.environ.get("PARTNER_CREDIT_BIN")
    if path:
        if not os.access(path, os.X_OK):
            pytest.exit(f"PARTNER_CREDIT_BIN={path} is not an executable file", returncode=2)
        return os.path.abspath(path)  # servers run in their own directories
    for profile in ("release", "debug"):
        candidate = REPO / "target" / profile / "partner-credit"
        if candidate.exists():
            return str(candidate)
    pytest.exit("no partner-credit binary: build it or set PARTNER_CREDIT_BIN", returncode=2)


class Server:
    """One running `partner-credit serve`."""

    LISTENING = "partner-credit serve: listening on "

    def __init__(self, workdir: Path, config: str, name: str = "server"):
        self.workdir = workdir
        self.config_path = workdir / f"{name}.toml"
        self.config_path.write_text(config)
        self.stderr_lines: list[str] = []
        self._stderr_cond = threading.Condition()
        self.proc = subprocess.Popen(
            [binary(), "serve", "--config", str(self.config_path), "--listen", "127.0.0.1:0"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=workdir,
        )
        self._stderr_thread = threading.Thread(target=self._read_stderr, daemon=True)
        self._stderr_thread.start()
        line = self._first_stdout_line(timeout=30)
        if not line.startswith(self.LISTENING):
            self.proc.kill()
            raise AssertionError(f"unexpected first line {line!r}; stderr: {self.stderr()}")
        self.url = line[len(self.LISTENING):].strip()
        self.scheme, rest = self.url.split("://", 1)
        self.host = rest.rstrip("/")
        assert self.host.startswith("127.0.0.1:"), self.url
        self.port = int(self.host.rsplit(":", 1)[1])
        self.returncode = None
        self.stopped = False

    def _first_stdout_line(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        buffer = b""
        fd = self.proc.stdout.fileno()
        while b"\n" not in buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                self.proc.kill()
                raise AssertionError(f"no listening line within {timeout}s; stderr: {self.stderr()}")
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 4096)
                if not chunk:
                    self.proc.wait(5)
                    raise AssertionError(
                        f"the server exited ({self.proc.returncode}) before listening; stderr: {self.stderr()}"
                    )
                buffer += chunk
        return buffer.split(b"\n", 1)[0].decode()

    def _read_stderr(self):
        for raw in iter(self.proc.stderr.readline, b""):
            with self._stderr_cond:
                self.stderr_lines.append(raw.decode(errors="replace"))
                self._stderr_cond.notify_all()

    def stderr(self) -> str:
        with self._stderr_cond:
            return "".join(self.stderr_lines)

    def wait_for_stderr(self, texts, timeout: float = 10) -> bool:
        """Waits until a line of the server's log holds one of `texts`."""
        texts = (texts,) if isinstance(texts, str) else tuple(texts)
        with self._stderr_cond:
            return self._stderr_cond.wait_for(
                lambda: any(text in line for line in self.stderr_lines for text in texts), timeout=timeout
            )

    def interrupt(self):
        self.stopped = True
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)

    def stop(self, timeout: float = 10) -> int:
        """Ctrl-C, and the exit status (None when it did not exit within `timeout`)."""
        if self.returncode is not None:
            return self.returncode
        self.interrupt()
        try:
            self.returncode = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            self.returncode = None
        self._stderr_thread.join(5)
        return self.returncode


# ----- clients -------------------------------------------------------------------------------


def error_code(call, *args, **kwargs) -> str:
    """The API error code `call` fails with (it must fail)."""
    with pytest.raises(TencentCloudSDKException) as raised:
        call(*args, **kwargs)
    return raised.value.code


class Api:
    """The official clients against one server, per caller."""

    def __init__(self, server: Server, ca_file: str | None = None):
        self.server = server
        self.ca_file = ca_file

    def _profile(self) -> ClientProfile:
        http = HttpProfile(endpoint=self.server.host, reqTimeout=30, certification=self.ca_file)
        http.scheme = self.server.scheme
        return ClientProfile(httpProfile=http)

    @staticmethod
    def credential(caller) -> credential.Credential:
        if caller == "operator":
            return credential.Credential(*OPERATOR)
        if isinstance(caller, tuple):
            return credential.Credential(*caller)
        return credential.Credential(*key_of(caller))

    def client(self, caller) -> intlpartnersmgt_client.IntlpartnersmgtClient:
        """The SDK's typed client, signed as `caller` ("operator", a UIN, or (id, key))."""
        return intlpartnersmgt_client.IntlpartnersmgtClient(self.credential(caller), "", self._profile())

    def common(self, caller, version: str = VERSION) -> CommonClient:
        return CommonClient(SERVICE, version, self.credential(caller), "", profile=self._profile())

    def up(self, caller, action: str, params: dict | None = None) -> dict:
        """An upstream action through the typed client: the response model as a dict."""
        request = getattr(models, f"{action}Request")()
        request.from_json_string(json.dumps(params or {}))
        response = getattr(self.client(caller), action)(request)
        fields = json.loads(response.to_json_string())
        assert fields.pop("RequestId", None), f"{action}: no RequestId"
        return fields

    def own(self, caller, action: str, params: dict | None = None) -> dict:
        """One of the engine's own actions through the SDK's CommonClient."""
        answer = self.common(caller).call_json(action, params or {})
        fields = dict(answer["Response"])
        assert fields.pop("RequestId", None), f"{action}: no RequestId"
        return fields

    # ----- raw signed requests, for what the SDK cannot send -----

    def signed_headers(
        self,
        action: str | None,
        body: bytes,
        *,
        caller="operator",
        timestamp: int | None = None,
        version: str | None = VERSION,
        content_type: str = "application/json",
        authorization: bool = True,
    ) -> dict:
        """The headers of a TC3-signed POST / of `body`, built by hand with the SDK's own
        `Sign.sign_tc3`."""
        secret_id, secret_key = self.credential(caller).secret_id, self.credential(caller).secret_key
        timestamp = int(time.time()) if timestamp is None else timestamp
        date = datetime.datetime.fromtimestamp(timestamp, datetime.timezone.utc).strftime("%Y-%m-%d")
        payload_hash = hashlib.sha256(body).hexdigest()
        canonical = "\n".join(
            ["POST", "/", "", f"content-type:{content_type}\nhost:{self.server.host}\n", "content-type;host", payload_hash]
        )
        to_sign = "\n".join(
            [
                "TC3-HMAC-SHA256",
                str(timestamp),
                f"{date}/{SERVICE}/tc3_request",
                hashlib.sha256(canonical.encode()).hexdigest(),
            ]
        )
        signature = Sign.sign_tc3(secret_key, date, SERVICE, to_sign)
        headers = {"Content-Type": content_type, "Host": self.server.host, "X-TC-Timestamp": str(timestamp)}
        if action is not None:
            headers["X-TC-Action"] = action
        if version is not None:
            headers["X-TC-Version"] = version
        if authorization:
            headers["Authorization"] = (
                f"TC3-HMAC-SHA256 Credential={secret_id}/{date}/{SERVICE}/tc3_request, "
                f"SignedHeaders=content-type;host, Signature={signature}"
            )
        return headers

    def raw(self, action: str | None, body: bytes | str, *, sign_body: bytes | None = None, **signing) -> dict:
        """A hand-signed request (see `signed_headers`): any body, any timestamp. `sign_body`
        signs other bytes than those sent. Returns the parsed answer with exact decimals."""
        if isinstance(body, str):
            body = body.encode()
        headers = self.signed_headers(action, body if sign_body is None else sign_body, **signing)
        response = requests.post(
            f"{self.server.scheme}://{self.server.host}/",
            data=body,
            headers=headers,
            timeout=30,
            verify=self.ca_file or True,
        )
        assert response.status_code == 200, (response.status_code, response.text)
        assert response.headers["Content-Type"] == "application/json"
        return json.loads(response.content, parse_float=Decimal)["Response"]


def raw_error(answer: dict) -> str:
    assert "Error" in answer, f"expected an error, got {answer}"
    return answer["Error"]["Code"]


# ----- the world every functional test starts from --------------------------------------------


class World(Api):
    """A server with a small hierarchy and credit:

    DIST (distributor, 1000) -> SUB (second-level reseller, pool 300) -> C_SUB (100)
    RES (reseller, 500) -> C_RES (100), C_RES_B (50)
    RES2 (reseller, 200) -> C_RES2 (40)
    """

    def setup(self):
        op = "operator"
        assert self.own(op, "CreatePartner", {"Kind": "Distributor", "Uin": DIST, "Name": "Dist"}) == {"Uin": DIST}
        assert self.own(op, "CreatePartner", {"Kind": "SubAgent", "ParentUin": DIST, "Uin": SUB}) == {"Uin": SUB}
        assert self.own(op, "CreatePartner", {"Kind": "Reseller", "Uin": RES, "Name": "Res"}) == {"Uin": RES}
        assert self.own(op, "CreatePartner", {"Kind": "Reseller", "Uin": RES2}) == {"Uin": RES2}
        for customer, parent in CUSTOMERS.items():
            created = self.own(
                op, "CreateClient", {"ParentUin": parent, "Uin": customer, "Name": f"customer {customer}"}
            )
            assert created == {"Uin": customer}
        self.grants = {
            DIST: self.own(op, "GrantPartnerCredit", {"PartnerUin": DIST, "Credit": 1000}),
            RES: self.own(op, "GrantPartnerCredit", {"PartnerUin": RES, "Credit": 500}),
            RES2: self.own(op, "GrantPartnerCredit", {"PartnerUin": RES2, "Credit": 200}),
        }
        self.pool = self.up(DIST, "AllocateCreditPool", {"SubAgentUin": SUB, "Credit": 300})
        self.allocations = {
            C_SUB: self.up(SUB, "AllocateCustomerCredit", {"ClientUin": C_SUB, "AddedCredit": 100}),
            C_RES: self.up(RES, "AllocateCustomerCredit", {"ClientUin": C_RES, "AddedCredit": 100}),
            C_RES_B: self.up(RES, "AllocateCustomerCredit", {"ClientUin": C_RES_B, "AddedCredit": 50}),
            C_RES2: self.up(RES2, "AllocateCustomerCredit", {"ClientUin": C_RES2, "AddedCredit": 40}),
        }
        return self

    # ----- reading the books back through the documented queries -----

    def customer_credit(self, customer: int) -> tuple[Decimal, Decimal]:
        """(TotalCredit, RemainingCredit) of a customer, as its partner sees it."""
        data = self.up(CUSTOMERS[customer], "QueryCreditByUinList", {"UinList": [customer]})["Data"]
        assert [row["Uin"] for row in data] == [customer], data
        return D(data[0]["TotalCredit"]), D(data[0]["RemainingCredit"])

    def partner_credit(self, partner: int) -> dict:
        return {name: D(value) for name, value in self.up(partner, "QueryPartnerCredit").items() if value is not None}

    def snapshot(self) -> dict:
        """Everything the queries show about every account."""
        state = {}
        for partner in (DIST, RES, RES2):
            state[("partner", partner)] = self.up(partner, "QueryPartnerCredit")
        for partner in (SUB, RES, RES2):
            mine = sorted(c for c, p in CUSTOMERS.items() if p == partner)
            state[("uins", partner)] = self.up(partner, "QueryCreditByUinList", {"UinList": mine})
            state[("customers", partner)] = self.up(partner, "QueryCustomersCredit", {})
        for customer in CUSTOMERS:
            state[("quota", customer)] = self.up(customer, "QueryCustomerBillingQuota")
        return state


@pytest.fixture
def start_server(tmp_path):
    """Starts servers (stopped with Ctrl-C at the end, which must exit 0 within 10 s)."""
    servers = []

    def start(config: str, name: str = "server") -> Server:
        server = Server(tmp_path, config, name)
        servers.append(server)
        return server

    yield start
    failures = []
    for server in servers:
        if server.returncode is not None or server.proc.poll() is not None and server.stopped:
            continue  # stopped by the test itself, which checked the status
        code = server.stop()
        if code != 0:
            failures.append(f"{server.url}: exit status {code} after Ctrl-C; stderr:\n{server.stderr()[-3000:]}")
    if failures:
        pytest.fail("\n".join(failures))


@pytest.fixture
def world(start_server) -> World:
    return World(start_server(toml_config(quotas=UNTHROTTLED))).setup()
