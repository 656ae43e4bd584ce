"""The OpenAPI 3.1 document docs/openapi.yaml against the live gateway (SPEC section 6; issue 6).

What is checked:

* the document is valid OpenAPI 3.1, and documents exactly the routes the daemon serves
  (the `Route` enum of Sources/GatewayAPI is parsed, so a route added without
  documenting it fails here);
* hand-made calls that reach every success answer (a real OAuth connection through
  the sandbox, signed webhooks, a FIT file, a retry, a disconnect, ...) conform to it;
* schemathesis fuzzes every operation against a seeded daemon: no 5xx, and every
  status code, content type, header and body conforms to the document;
* regressions of what the fuzzer found (TRACE, log quoting).

Most webhooks the fuzzer generates are signed by the requests session (over the body as
sent), so the fuzzer reaches the 202/200/400 answers, not only 401.
The run is bounded (`OPENAPI_FUZZ_EXAMPLES` per operation, default 30) and reproducible
(`OPENAPI_FUZZ_SEED`, default fixed).
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
import urllib.parse
from pathlib import Path

import pytest
import requests
import schemathesis
import yaml
from hypothesis import strategies as st
from openapi_spec_validator import validate as validate_openapi
from openapi_spec_validator.versions import consts as openapi_versions
from openapi_spec_validator.versions.shortcuts import get_spec_version
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from conftest import WEBHOOK_PATH, Daemon, created, deleted, describe, now_s, sign_manual, uid, wait_for
from sandbox_fixture import sandbox_server  # noqa: F401  (module fixture)

ROOT = Path(__file__).resolve().parents[2]
DOC_PATH = ROOT / "docs" / "openapi.yaml"
API_SOURCES = ROOT / "Sources" / "GatewayAPI"
RETURN_TO = "https://plan.example/athletes/return"

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]

MAX_EXAMPLES = int(os.environ.get("OPENAPI_FUZZ_EXAMPLES", "30"))
SEED = int(os.environ.get("OPENAPI_FUZZ_SEED", "20260601"))

schema = schemathesis.openapi.from_path(
    DOC_PATH,
    config=schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "generation": {"mode": "all", "max-examples": MAX_EXAMPLES, "database": "none"},
            # Unexpected methods: every one libevent knows (405 from the gateway). A method it does
            # not know (QUERY) gets libevent's 501, which RFC 9110 15.6.2 prescribes for that case.
            "phases": {
                "stateful": {"enabled": False},
                "coverage": {"unexpected-methods": ["get", "put", "post", "delete", "options", "patch", "trace"]},
            },
        }
    ),
)

# Ids the seeding made, so generated path parameters hit real resources too.
SEEDED: dict[str, list[str]] = {"session": [], "athlete": []}


@schema.hook
def flatmap_path_parameters(context, path_parameters):
    """Half of the generated ids are replaced by seeded ones (sessions or athletes)."""
    if not isinstance(path_parameters, dict) or "id" not in path_parameters:
        return st.just(path_parameters)
    kind = "athlete" if "/athletes/" in context.operation.path else "session"
    known = SEEDED[kind]
    if not known:
        return st.just(path_parameters)
    return st.one_of(
        st.just(path_parameters), st.sampled_from(known).map(lambda i: {**path_parameters, "id": i})
    )


# --------------------------------------------------------------------------
# The document itself
# --------------------------------------------------------------------------


def _load_document() -> dict:
    with open(DOC_PATH, encoding="utf-8") as f:
        return yaml.safe_load(f)


def _api_source() -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in sorted(API_SOURCES.glob("*.swift")))


def _swift_routes(text: str) -> dict[str, tuple[str, str]]:
    """`Route` case name -> (HTTP method, path template), read from the Swift source."""
    m = re.search(r"\benum Route\b[^{]*\{(.*?)\n\}", text, re.S)
    assert m, "enum Route not found in Sources/GatewayAPI"
    body = m.group(1)
    head = body.split("var template", 1)[0]
    cases: set[str] = set()
    for line in head.splitlines():
        line = line.strip()
        if line.startswith("case "):
            names = re.sub(r"\([^)]*\)", "", line[len("case "):])
            cases.update(n.strip() for n in names.split(",") if n.strip())
    templates = dict(re.findall(r'case \.(\w+)(?:\([^)]*\))?:\s*return "(/[^"]*)"', body))
    methods = {case: method for method, case in re.findall(r"only\(\.(\w+),\s*\.(\w+)\b", body)}
    meta = {"wrongMethod", "notFound"}
    assert meta <= cases, f"Route has no {meta - cases}: the parser no longer matches Responses.swift"
    routes = {}
    for case in sorted(cases - meta):
        assert case in templates, f"Route.{case} has no literal path template"
        assert case in methods, f"Route.{case} is never matched with only(.method, .{case})"
        routes[case] = (methods[case].upper(), templates[case])
    return routes


def test_document_is_valid_openapi_3_1():
    doc = _load_document()
    assert doc["openapi"] == "3.1.0"
    assert get_spec_version(doc) == openapi_versions.OPENAPIV31
    validate_openapi(doc)  # raises on any violation of the OpenAPI 3.1 schema
    # Every operation is named and documents at least one success answer.
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method == "parameters":
                continue
            assert op.get("operationId"), f"{method} {path} has no operationId"
            assert any(code.startswith("2") or code.startswith("3") for code in op["responses"]), (method, path)


def _documented(doc: dict) -> set[tuple[str, str]]:
    methods = ("get", "put", "post", "delete", "patch", "head", "options")
    return {(m.upper(), path) for path, item in doc["paths"].items() for m in item if m in methods}


def test_every_route_of_the_daemon_is_documented_and_nothing_else():
    routes = _swift_routes(_api_source())
    assert len(routes) >= 15, routes  # SPEC sections 2, 6 and 7 have 15 routes today
    assert routes["retry"] == ("POST", "/v1/sessions/{id}/retry"), routes
    documented = _documented(_load_document())
    served = set(routes.values())
    assert served - documented == set(), f"routes the daemon serves but docs/openapi.yaml lacks: {served - documented}"
    assert documented - served == set(), f"operations in docs/openapi.yaml the daemon does not serve: {documented - served}"


def test_a_route_added_to_the_source_is_reported_missing():
    """The check above can fail: a Route case added to the Swift source shows up as undocumented."""
    source = _api_source()
    added = (
        "\n    case exportAll"
        '\n    var _template: String { switch self { case .exportAll: return "/v1/export" } }'
        "\n    func _match() -> Route { only(.get, .exportAll) }"
    )
    patched, count = re.subn(r"(\benum Route\b[^{]*\{)", lambda m: m.group(1) + added, source, count=1)
    assert count == 1
    routes = _swift_routes(patched)
    assert routes["exportAll"] == ("GET", "/v1/export")
    assert set(routes.values()) - _documented(_load_document()) == {("GET", "/v1/export")}


# --------------------------------------------------------------------------
# A seeded daemon with both providers on the sandbox
# --------------------------------------------------------------------------


def _provider_config(base: str) -> dict:
    return {
        "providers.garmin": {
            "enabled": True,
            "client_id": "sandbox-garmin-client",
            "client_secret": "sandbox-garmin-secret",
            "authorize_url": f"{base}/garmin/oauth2Confirm",
            "token_url": f"{base}/garmin/di-oauth2-service/oauth/token",
            "api_base_url": f"{base}/garmin",
        },
        "providers.wahoo": {
            "enabled": True,
            "client_id": "sandbox-wahoo-client",
            "client_secret": "sandbox-wahoo-secret",
            "authorize_url": f"{base}/wahoo/oauth/authorize",
            "token_url": f"{base}/wahoo/oauth/token",
            "api_base_url": f"{base}/wahoo",
        },
    }


def header(response: schemathesis.Response, name: str) -> str | None:
    for key, values in response.headers.items():
        if key.lower() == name.lower():
            return values[0] if isinstance(values, list) else values
    return None


class Live:
    """The daemon and what was seeded into it."""

    def __init__(self, gw: Daemon):
        self.gw = gw
        self.auth = {"Authorization": f"Bearer {gw.api_keys[0]}"}
        # The document's example ids, so its examples (which schemathesis sends) hit real data.
        self.athlete = "ath_1"  # Garmin connected (primary), Wahoo revoked
        self.sent = "ses_1"
        self.lonely = uid("ath")  # no connection
        self.failed = uid("ses")
        self.strength = uid("ses")
        self.gone = uid("ses")
        self.waiting = uid("ses")

    def validated(
        self, path: str, method: str, expect: int, headers: dict | None = None, **case_kw
    ) -> schemathesis.Response:
        """A hand-made call through schemathesis, checked like the fuzzed ones."""
        case = schema[path][method].Case(**case_kw)
        response = case.call_and_validate(base_url=self.gw.base_url, headers=headers, checks=CHECKS)
        assert response.status_code == expect, f"{method} {path}: {response.status_code} {response.text[:300]!r}"
        return response

    def connect(self, athlete: str, provider: str, user: str) -> None:
        r = self.validated(
            "/v1/athletes/{id}/connections/{provider}/authorize", "POST", 200,
            path_parameters={"id": athlete, "provider": provider}, body={"returnTo": RETURN_TO},
            headers=self.auth)
        url = r.json()["authorizeUrl"]
        at_provider = requests.get(url + "&" + urllib.parse.urlencode({"sandbox_user": user}),
                                   allow_redirects=False, timeout=10)
        assert at_provider.status_code == 302, describe(at_provider)
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(at_provider.headers["Location"]).query))
        back = self.validated(
            "/v1/oauth/{provider}/callback", "GET", 302,
            path_parameters={"provider": provider}, query={"code": query["code"], "state": query["state"]})
        assert header(back, "Location") == f"{RETURN_TO}?connected={provider}", back.headers


@pytest.fixture(scope="module")
def live(daemon_factory, sandbox_server) -> Live:  # noqa: F811
    gw = daemon_factory("openapi", extra=_provider_config(sandbox_server.base))
    live = Live(gw)
    live.connect(live.athlete, "garmin", uid("garmin-user"))
    live.connect(live.athlete, "wahoo", str(int(time.time() * 1000) % 900_000_000 + 100_000))
    gw.accept(created(live.sent, live.athlete))
    gw.accept(created(live.failed, live.athlete, workout={"sport": "BIKE", "steps": []}))
    gw.accept(created(live.strength, live.athlete, session_type="STRENGTH"))
    gw.accept(created(live.gone, live.athlete, revision=1))
    gw.accept(deleted(live.gone, live.athlete, revision=2))
    gw.accept(created(live.waiting, live.lonely))
    wait_for(lambda: gw.status(live.sent).json()["exportStatus"] == "SENT", timeout=20, what="seeded push SENT")
    wait_for(lambda: gw.status(live.failed).json()["exportStatus"] == "FAILED", timeout=20, what="seeded FAILED")
    SEEDED["session"][:] = [live.sent, live.waiting, live.failed, live.strength, live.gone]
    SEEDED["athlete"][:] = [live.athlete, live.lonely]
    return live


# --------------------------------------------------------------------------
# Hand-made calls reaching every success answer
# --------------------------------------------------------------------------


def test_success_answers_conform(live):
    gw, auth = live.gw, live.auth
    # Sessions in every state the seeding produced.
    sent = live.validated("/v1/sessions/{id}", "GET", 200, path_parameters={"id": live.sent}, headers=auth).json()
    assert sent["exportStatus"] == "SENT" and sent["exportProvider"] == "GARMIN" and sent["exportedAt"]
    failed = live.validated("/v1/sessions/{id}", "GET", 200, path_parameters={"id": live.failed}, headers=auth)
    assert failed.json()["lastExportError"].startswith("Validation failed")
    strength = live.validated("/v1/sessions/{id}", "GET", 200, path_parameters={"id": live.strength}, headers=auth)
    assert strength.json()["exportStatus"] is None
    gone = live.validated("/v1/sessions/{id}", "GET", 200, path_parameters={"id": live.gone}, headers=auth)
    assert gone.json()["deleted"] is True
    # A paged list with a cursor, then its last page.
    first = live.validated("/v1/sessions", "GET", 200, query={"athleteId": live.athlete, "limit": 2}, headers=auth)
    cursor = first.json()["nextCursor"]
    assert isinstance(cursor, str) and len(first.json()["sessions"]) == 2
    rest = live.validated("/v1/sessions", "GET", 200,
                          query={"athleteId": live.athlete, "limit": 500, "cursor": cursor}, headers=auth)
    assert rest.json()["nextCursor"] is None and len(rest.json()["sessions"]) == 2
    # FIT file; 422 for a workout that cannot be exported.
    fit = live.validated("/v1/sessions/{id}/workout.fit", "GET", 200, path_parameters={"id": live.sent}, headers=auth)
    assert fit.content[8:12] == b".FIT", fit.content[:16]
    live.validated("/v1/sessions/{id}/workout.fit", "GET", 422, path_parameters={"id": live.failed}, headers=auth)
    # Retry: FAILED is re-queued, SENT is not retryable.
    live.validated("/v1/sessions/{id}/retry", "POST", 202, path_parameters={"id": live.failed}, headers=auth)
    live.validated("/v1/sessions/{id}/retry", "POST", 409, path_parameters={"id": live.sent}, headers=auth)
    # Connections: both providers, then primary moves, then one disconnects.
    conns = live.validated("/v1/athletes/{id}/connections", "GET", 200,
                           path_parameters={"id": live.athlete}, headers=auth).json()["connections"]
    assert sorted(c["provider"] for c in conns) == ["GARMIN", "WAHOO"]
    moved = live.validated("/v1/athletes/{id}/primary-provider", "PUT", 200,
                           path_parameters={"id": live.athlete}, body={"provider": "WAHOO"}, headers=auth)
    assert moved.json() == {"primaryProvider": "WAHOO"}
    live.validated("/v1/athletes/{id}/primary-provider", "PUT", 409,
                   path_parameters={"id": live.lonely}, body={"provider": "GARMIN"}, headers=auth)
    live.validated("/v1/athletes/{id}/connections/{provider}", "DELETE", 204,
                   path_parameters={"id": live.athlete, "provider": "wahoo"}, headers=auth)
    conns = live.validated("/v1/athletes/{id}/connections", "GET", 200,
                           path_parameters={"id": live.athlete}, headers=auth).json()["connections"]
    by = {c["provider"]: c for c in conns}
    assert by["WAHOO"]["status"] == "REVOKED" and by["WAHOO"]["revokedAt"] and by["GARMIN"]["primary"] is True
    # OAuth callback without a known state: the HTML page.
    page = live.validated("/v1/oauth/{provider}/callback", "GET", 400,
                          path_parameters={"provider": "garmin"}, query={"code": "x", "state": "forged"})
    assert header(page, "Content-Type").startswith("text/html"), page.headers
    # Garmin notifications about a user nobody has.
    r = live.validated("/v1/providers/garmin/deregistrations", "POST", 200,
                       body={"deregistrations": [{"userId": uid("nobody")}]})
    assert r.json() == {"revoked": 0}
    r = live.validated("/v1/providers/garmin/permissions", "POST", 200,
                       body={"userPermissionsChange": [{"userId": 42, "permissions": []}]})
    assert r.json() == {"revoked": 0}
    # Monitors.
    live.validated("/healthz", "GET", 200)
    live.validated("/readyz", "GET", 200)
    assert "gatewayd_webhooks_total" in live.validated("/metrics", "GET", 200).text
    # A signed webhook: 202, then the same id again: 200 duplicate; an unsigned one: 401.
    body = created(uid("ses"), uid("ath"))
    live.validated(WEBHOOK_PATH, "POST", 202, body=body, headers=_signed(gw, "msg_oas_" + uid("m"), body))
    again = _signed(gw, "msg_oas_again_" + uid("m"), body)
    live.validated(WEBHOOK_PATH, "POST", 202, body=body, headers=again)
    live.validated(WEBHOOK_PATH, "POST", 200, body=body, headers=again)
    live.validated(WEBHOOK_PATH, "POST", 401, body=body,
                   headers={"webhook-id": uid("m"), "webhook-timestamp": str(now_s()), "webhook-signature": "v1,AAAA"})


def _signed(gw: Daemon, msg_id: str, event: dict) -> dict:
    """Headers for `event` as schemathesis serializes it (json.dumps defaults)."""
    ts = now_s()
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": sign_manual(gw.secrets[0], msg_id, ts, json.dumps(event).encode()),
    }


def test_no_token_in_any_connection_answer(live):
    r = live.gw.get(f"/v1/athletes/{live.athlete}/connections")
    assert r.status_code == 200, describe(r)
    assert "token" not in r.text.lower()


# --------------------------------------------------------------------------
# Regressions of what the fuzzer found
# --------------------------------------------------------------------------


def _raw_exchange(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    """Sends raw bytes on one connection; returns everything read until the server closes it."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        out = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                return out
            out += chunk
        pytest.fail(f"the connection stayed open after {out[:300]!r}")


def test_trace_gets_405_and_its_body_never_becomes_a_request(live):
    """TRACE got libevent's HTML 501; allowed, its body (which libevent does not read) was then
    parsed as the next request on the kept-alive connection (a request smuggled in a body)."""
    smuggled = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    head = f"TRACE /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: {len(smuggled)}\r\n\r\n".encode()
    answer = _raw_exchange(live.gw.port, head + smuggled)
    assert answer.count(b"HTTP/1.1 ") == 1, answer
    head_part, _, body = answer.partition(b"\r\n\r\n")
    lines = head_part.decode("latin-1").split("\r\n")
    assert lines[0].startswith("HTTP/1.1 405"), answer
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    assert headers["allow"] == "GET" and headers["connection"].lower() == "close", headers
    assert headers["content-type"].startswith("application/json"), headers
    assert json.loads(body)["error"]["code"] == "method_not_allowed", body

    # As schemathesis sent it: a TRACE with a JSON body, then a call on the same session.
    with requests.Session() as session:
        traced = session.request("TRACE", live.gw.url("/v1/providers/garmin/permissions"), json={"x": 1}, timeout=10)
        assert traced.status_code == 405 and traced.headers["Allow"] == "POST", describe(traced)
        follow = session.post(live.gw.url("/v1/providers/garmin/permissions"), json={"x": 1}, timeout=10)
        assert follow.status_code == 400 and follow.json()["error"]["code"] == "invalid_request", describe(follow)


def test_log_values_with_line_breaks_are_quoted(live):
    """A generated athlete id with "\\r\\n" (one Character in Swift) went into the log unquoted,
    so an id could end the log line and forge the next one."""
    gw = live.gw
    sid = uid("ses")
    athlete = "ath\r\nforged\u0016\u00a0x"  # no space, "=" or lone "\\n": left unquoted before
    gw.accept(created(sid, athlete))
    wait_for(lambda: gw.status(sid).json()["exportStatus"] == "NOT_CONNECTED", timeout=10, what="push outcome")
    wait_for(lambda: sid in gw.log_text(), timeout=10, what="the push outcome logged")
    lines = gw.log_text().splitlines()
    assert all(line.startswith("ts=") or line.startswith("=====") or not line for line in lines), [
        line for line in lines if not (line.startswith("ts=") or line.startswith("====="))
    ][:3]
    assert not any("\x16" in line for line in lines)
    logged = [line for line in lines if sid in line]
    assert logged and all('athlete_id="ath\\r\\nforged\\u0016' in line for line in logged if "athlete_id=" in line), logged


# --------------------------------------------------------------------------
# The fuzzer
# --------------------------------------------------------------------------


class SigningSession(requests.Session):
    """The plan app's side of the fuzzed requests.

    Webhooks: three in four are signed over the body as sent, with a fresh timestamp, and
    five in six of those get a unique `webhook-id` (the generator repeats its ids, which
    would make nearly every webhook a duplicate). Counting requests keeps a run with a
    fixed seed reproducible. (Calls without the bearer key come from schemathesis itself:
    its negative cases drop the security header.)
    """

    def __init__(self, secret: str):
        super().__init__()
        self.secret = secret
        self.count = 0

    def send(self, request, **kwargs):
        self.count += 1
        n = self.count
        if urllib.parse.urlsplit(request.url).path == WEBHOOK_PATH:
            msg_id = request.headers.get("webhook-id")
            if isinstance(msg_id, str) and msg_id.isascii() and n % 4:
                if n % 6:
                    msg_id = f"{msg_id}.{n}"
                    request.headers["webhook-id"] = msg_id
                body = request.body or b""
                if isinstance(body, str):
                    body = body.encode("utf-8")
                ts = now_s()
                request.headers["webhook-timestamp"] = str(ts)
                request.headers["webhook-signature"] = sign_manual(self.secret, msg_id, ts, body)
        return super().send(request, **kwargs)


@pytest.fixture(scope="module")
def fuzz_session(live):
    s = SigningSession(live.gw.secrets[0])
    yield s
    s.close()


@schema.parametrize()
def test_live_gateway_conforms(case, live, fuzz_session):
    case.call_and_validate(
        base_url=live.gw.base_url, session=fuzz_session, headers=dict(live.auth), checks=CHECKS, timeout=10
    )
    assert live.gw.alive(), "gatewayd died\n" + live.gw.log_tail()
