"""The server process itself: start-up from a configuration, the listening line, Ctrl-C."""

import json
import signal
import socket
import subprocess

import requests

from conftest import OPERATOR, Api, Server, binary, error_code, toml_config


def raw_head(api, action: str, body: bytes, extra: str = "") -> bytes:
    """The head of a signed request for `body`, to send by hand over a socket."""
    headers = api.signed_headers(action, body)
    head = "POST / HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return (head + f"Content-Length: {len(body)}\r\n{extra}\r\n").encode()


def test_ping_and_the_listening_line(start_server):
    server = start_server(toml_config())
    assert server.url == f"http://127.0.0.1:{server.port}"
    api = Api(server)
    assert api.own("operator", "Ping") == {}
    assert error_code(api.own, "operator", "Ping", {"Extra": 1}) == "UnknownParameter"


def test_other_methods_and_paths_answer_in_the_api_shape(start_server):
    server = start_server(toml_config())
    for method, path, code in (
        ("GET", "/v2", "UnsupportedOperation"),
        ("POST", "/v2", "UnsupportedOperation"),
        ("PUT", "/", "UnsupportedOperation"),
        # GET / is the API's, but this one is signed neither with TC3 nor with v1.
        ("GET", "/", "AuthFailure.InvalidAuthorization"),
    ):
        response = requests.request(method, f"{server.url}{path}", timeout=10)
        assert response.status_code == 200
        answer = response.json()["Response"]
        assert answer["Error"]["Code"] == code, (method, path, answer)
        assert answer["RequestId"]


def test_ctrl_c_stops_the_server_with_status_zero(start_server):
    server = start_server(toml_config())
    assert Api(server).own("operator", "Ping") == {}
    assert server.stop() == 0
    # It no longer listens.
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", server.port)) != 0


def test_ctrl_c_lets_a_request_in_flight_finish(start_server):
    """Graceful: a request whose body is still arriving when Ctrl-C comes gets its answer."""
    server = start_server(toml_config())
    api = Api(server)
    assert api.own("operator", "Ping") == {}  # serving, Ctrl-C handler in place
    body = json.dumps({"Kind": "Reseller", "Uin": 7_000_001}).encode()
    head = raw_head(api, "CreatePartner", body, "Connection: close\r\n")
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as connection:
        connection.sendall(head + body[:5])
        # Connections are accepted in order: once a later one is served, this one is in.
        assert api.own("operator", "Ping") == {}
        server.interrupt()
        # The server logs that it took the signal in (actix: "SIGINT received; ...").
        assert server.wait_for_stderr(("SIGINT", "Ctrl-C", "ctrl-c", "shutdown")), server.stderr()
        connection.sendall(body[5:])
        answer = b""
        try:
            while chunk := connection.recv(65536):
                answer += chunk
        except ConnectionResetError:
            pass
    assert answer.startswith(b"HTTP/1.1 200"), (answer, server.stderr())
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["Response"]["Uin"] == 7_000_001
    assert server.stop() == 0


def test_ctrl_c_right_after_the_listening_line_stops_the_server_with_status_zero(start_server):
    """Scripts wait for the listening line and may stop the server at once."""
    statuses = []
    for _ in range(5):
        server = start_server(toml_config())
        statuses.append(server.stop())
    assert statuses == [0] * 5


def test_a_partial_http_table_takes_the_defaults(start_server):
    """`[http]` with one setting, as the configuration's documentation shows it."""
    config = toml_config().split("[http]")[0] + "[http]\nbody_limit = 4096\n"
    server = start_server(config)
    assert Api(server).own("operator", "Ping") == {}


def test_a_bad_configuration_is_refused_at_start(tmp_path):
    config = toml_config(quotas={"NoSuchAction": 1})
    path = tmp_path / "bad.toml"
    path.write_text(config)
    done = subprocess.run(
        [binary(), "serve", "--config", str(path), "--listen", "127.0.0.1:0"],
        capture_output=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode != 0
    assert b"no action is called NoSuchAction" in done.stderr
    assert b"listening" not in done.stdout


def test_the_operator_key_is_the_one_configured(start_server):
    server = start_server(toml_config())
    api = Api(server)
    assert api.own((OPERATOR[0], OPERATOR[1]), "Ping") == {}
    assert error_code(api.own, (OPERATOR[0], OPERATOR[1] + "x"), "Ping") == "AuthFailure.SignatureFailure"


def test_a_body_that_does_not_arrive_in_time_is_refused_and_the_connection_closed(start_server):
    """A client that declares a body and sends it a byte at a time gets no more than
    body_timeout_secs of the server's attention (and memory)."""
    server = start_server(toml_config(http={"body_timeout_secs": 1}))
    api = Api(server)
    body = json.dumps({"Kind": "Reseller", "Uin": 7_000_002}).encode()
    head = raw_head(api, "CreatePartner", body)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as connection:
        connection.sendall(head + body[:3])
        answer = b""
        while chunk := connection.recv(65536):  # the server answers, then closes
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200"), answer
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["Response"]["Error"]["Code"] == "RequestTimeout"
    # Nothing was created: the same partner can be created now.
    assert api.own("operator", "CreatePartner", {"Kind": "Reseller", "Uin": 7_000_002}) == {"Uin": 7_000_002}
    assert server.stop() == 0
