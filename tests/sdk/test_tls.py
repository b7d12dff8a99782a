"""HTTPS, and the `tccli` command (which speaks only HTTPS).

A throw-away CA and a server certificate for 127.0.0.1 are made with `openssl`. tccli verifies
the server against `certifi.where()`, passed to requests as `verify=` explicitly, so
REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE / SSL_CERT_FILE are ignored (checked below). The only
way to make it trust the test CA without touching the installed packages is a copy of the
`certifi` package, with the CA appended to its cacert.pem, placed first on PYTHONPATH.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import certifi
import pytest

from conftest import C_RES, C_RES_B, D, RES, World, toml_config


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """ca.pem, server.pem (SAN IP:127.0.0.1, signed by the CA), server.key; and a certifi
    shim trusting the CA."""
    if shutil.which("openssl") is None:
        pytest.fail("openssl is not installed (scripts/test installs it)")
    root = tmp_path_factory.mktemp("pki")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl(
        "req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", "/CN=partner-credit test CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=root,
    )  # fmt: skip
    openssl("req", "-new", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1", cwd=root)
    (root / "server.ext").write_text(
        "basicConstraints=CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n"
        "subjectAltName=IP:127.0.0.1\n"
        "subjectKeyIdentifier=hash\n"
        "authorityKeyIdentifier=keyid,issuer\n"
    )
    openssl(
        "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "server.pem", "-days", "2", "-extfile", "server.ext",
        cwd=root,
    )  # fmt: skip
    shim = root / "shim"
    shutil.copytree(Path(certifi.__file__).parent, shim / "certifi")
    with open(shim / "certifi" / "cacert.pem", "a") as bundle:
        bundle.write("\n" + (root / "ca.pem").read_text())
    return root


@pytest.fixture
def tls_world(start_server, pki) -> World:
    config = toml_config(tls=(str(pki / "server.pem"), str(pki / "server.key")), quotas={"AllocateCustomerCredit": None})
    server = start_server(config, name="tls")
    assert server.url.startswith("https://127.0.0.1:")
    # The SDK over HTTPS, trusting the CA through its own `certification` setting.
    return World(server, ca_file=str(pki / "ca.pem")).setup()


def tccli(world, caller, action, *args, trust=None, env=None):
    """Runs `tccli intlpartnersmgt ACTION` against the world's server: (exit status, stdout, stderr)."""
    from conftest import Api

    cred = Api.credential(caller)
    home = Path(world.server.workdir) / "tccli-home"
    home.mkdir(exist_ok=True)
    environment = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(home),  # no ~/.tccli of the machine's
        "LANG": "C.UTF-8",
    }
    if trust:
        environment["PYTHONPATH"] = str(trust)
    environment.update(env or {})
    command = [
        str(Path(sys.executable).parent / "tccli"),
        "intlpartnersmgt", action,
        "--endpoint", world.server.host,
        "--secretId", cred.secret_id,
        "--secretKey", cred.secret_key,
        "--region", "ap-guangzhou",
        *args,
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, env=environment, stdin=subprocess.DEVNULL)
    return done.returncode, done.stdout, done.stderr


def test_tccli_queries_partner_credit_over_https(tls_world, pki):
    status, out, err = tccli(tls_world, RES, "QueryPartnerCredit", trust=pki / "shim")
    assert status == 0, (out, err)
    answer = json.loads(out)
    assert answer["RequestId"]
    assert (D(answer["TotalCredit"]), D(answer["AllocatedCredit"]), D(answer["RemainingCredit"])) == (
        D(500),
        D(150),
        D(500),
    )


def test_tccli_allocates_customer_credit(tls_world, pki):
    status, out, err = tccli(
        tls_world, RES, "AllocateCustomerCredit",
        "--ClientUin", str(C_RES), "--AddedCredit", "12.5", "--Remark", "from tccli",
        trust=pki / "shim",
    )  # fmt: skip
    assert status == 0, (out, err)
    answer = json.loads(out)
    assert (D(answer["TotalCredit"]), D(answer["RemainingCredit"])) == (D("112.5"), D("112.5"))
    # The SDK over HTTPS sees the same books.
    assert tls_world.customer_credit(C_RES) == (D("112.5"), D("112.5"))


def test_tccli_reports_refusals(tls_world, pki):
    before = tls_world.snapshot()
    status, out, err = tccli(
        tls_world, RES, "AllocateCustomerCredit", "--ClientUin", str(C_RES), "--AddedCredit", "1000",
        trust=pki / "shim",
    )  # fmt: skip
    assert status != 0
    assert "InvalidParameterValue.CreditAmountOutOfRange" in out + err
    status, out, err = tccli(
        tls_world, (f"AKIDtest{RES}", "wrong-key"), "QueryPartnerCredit", trust=pki / "shim"
    )
    assert status != 0
    assert "AuthFailure.SignatureFailure" in out + err
    assert tls_world.snapshot() == before


def test_tccli_verifies_the_server_certificate(tls_world, pki):
    """Without the CA in its certifi bundle tccli refuses the server, and the usual CA
    variables do not change that (which is why the suite uses the certifi shim)."""
    ca = str(pki / "ca.pem")
    env = {"REQUESTS_CA_BUNDLE": ca, "CURL_CA_BUNDLE": ca, "SSL_CERT_FILE": ca}
    status, out, err = tccli(tls_world, RES, "QueryPartnerCredit", env=env)
    assert status != 0
    assert "CERTIFICATE_VERIFY_FAILED" in out + err
    # Nothing reached the engine: the customer's credit is untouched.
    assert tls_world.customer_credit(C_RES_B) == (D(50), D(50))


def test_plain_http_to_the_tls_server_is_not_served(tls_world):
    import requests

    with pytest.raises(requests.exceptions.ConnectionError):
        requests.post(f"http://{tls_world.server.host}/", data=b"{}", timeout=10)
    assert tls_world.own("operator", "Ping") == {}


def test_tccli_reads_the_voucher_pool_and_the_customer_vouchers(tls_world, pki):
    tls_world.own("operator", "GrantVoucherQuota", {"PartnerUin": RES, "Quota": 50})
    params = {"CustomerUin": C_RES, "Amount": 12.5, "ExpireTime": "2099-01-01 00:00:00"}
    voucher = tls_world.own(RES, "IssueCustomerVoucher", params)["VoucherId"]
    status, out, err = tccli(tls_world, RES, "QueryVoucherPool", trust=pki / "shim")
    assert status == 0, (out, err)
    answer = json.loads(out)
    assert (answer["AgentName"], answer["AccountType"], answer["IssuedNum"]) == ("Res", 1, 1)
    assert (D(answer["TotalQuota"]), D(answer["RemainingQuota"])) == (D(50), D("37.5"))
    status, out, err = tccli(
        tls_world, RES, "DescribeCustomerVoucherList", "--Page", "1", "--PageSize", "10",
        "--CustomerUin", str(C_RES), trust=pki / "shim",
    )  # fmt: skip
    assert status == 0, (out, err)
    answer = json.loads(out)
    assert answer["TotalCount"] == 1
    [item] = answer["Data"]
    assert (item["VoucherId"], item["CustomerUin"], item["VoucherStatus"], item["Usage"]) == (
        voucher,
        C_RES,
        "Issued",
        "CustomerOffer",
    )
    assert (D(item["TotalAmount"]), D(item["RemainingAmount"]), item["ExpireTime"]) == (
        D("12.5"),
        D("12.5"),
        "2099-01-01 00:00:00",
    )
