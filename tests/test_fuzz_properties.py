"""The fuzz targets (fuzz/targets.py) as bounded hypothesis properties, run in the suite.

The coverage-guided fuzzing is ``fuzz/run.py`` (``make fuzz``); this is its fallback in
``make test``: for every target, a bounded ``@given`` over mutations of the target's seed
corpus (fuzz/corpus/<target>/) and arbitrary bytes, with the same oracle -- no input may
end in an exception other than a tlsmith error with an alert, and no InternalError may
wrap a foreign exception (``TLSConnection.next_event``'s catch-all must never be what
saves the day). Plus: every seed replays cleanly, and the recorded handshakes in the
corpus still complete (else regenerate them: ``python fuzz/make_corpus.py``).
"""

from __future__ import annotations

import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fuzz"))

import targets

from tlsmith.codec.messages import ServerHello
from tlsmith.connection import TLSConnection
from tlsmith.errors import DecryptError, InternalError, TLSError
from tlsmith.events import ApplicationData, ClientCertificateReceived, Event, KeyUpdated

CONNECTION_TARGETS = ("server", "client13", "client12", "server12", "client13_flight",
                      "server13_client_flight", "client13_flight_resealed")
# HelloRetryRequest, PSK / 0-RTT, post-handshake authentication and TLS 1.2 resumption.
FLOW_TARGETS = ("client13_hrr", "client13_hrr_flight", "server13_hrr", "server13_psk",
                "server13_early_skip", "client13_resume", "client13_resume_flight",
                "server13_early", "client13_pha", "server13_pha", "client12_resume",
                "server12_resume")
PARSER_TARGETS = ("deframer", "handshake13", "handshake12", "extensions")


def assert_holds(target: str, data: bytes) -> None:
    """The oracle holds for ``data``, or the finding is a known one (``KNOWN_FINDINGS``
    in fuzz/targets.py, each tracked by an xfail test in test_fuzz_regressions.py)."""
    finding = targets.run_one(target, data)
    if finding is not None and not targets.is_known(finding):
        raise AssertionError(f"{target} on {data.hex()}: {finding}") from finding


@st.composite
def _mutated(draw: st.DrawFn, seeds: tuple[bytes, ...]) -> bytes:
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.integers(0, 4))
        n = len(data)
        if op == 0 and n:  # set a byte
            data[draw(st.integers(0, n - 1))] = draw(st.integers(0, 255))
        elif op == 1 and n:  # truncate
            del data[draw(st.integers(0, n - 1)):]
        elif op == 2:  # insert bytes
            i = draw(st.integers(0, n))
            data[i:i] = draw(st.binary(min_size=1, max_size=8))
        elif op == 3 and n:  # delete a range
            i = draw(st.integers(0, n - 1))
            del data[i : i + draw(st.integers(1, 32))]
        elif op == 4 and n >= 2:  # tweak a big-endian u16 (a length field, maybe)
            i = draw(st.integers(0, n - 2))
            value = int.from_bytes(data[i : i + 2], "big")
            value += draw(st.sampled_from((-256, -1, 1, 256, 0x7FFF, -value)))
            data[i : i + 2] = (value & 0xFFFF).to_bytes(2, "big")
    return bytes(data)


def _inputs(target: str) -> st.SearchStrategy[bytes]:
    seeds = tuple(targets.load_corpus(target))
    assert seeds, f"no seeds in fuzz/corpus/{target}/ (run python fuzz/make_corpus.py)"
    return st.one_of(_mutated(seeds), _mutated(seeds), st.binary(max_size=300))


@pytest.fixture(scope="module", autouse=True)
def _warm() -> None:
    targets.warm_up()


_SETTINGS = {"deadline": None, "database": None, "derandomize": True,
             "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large]}


def _property(target: str, examples: int) -> object:
    @settings(max_examples=examples, **_SETTINGS)  # type: ignore[arg-type]
    @given(data=_inputs(target))
    def prop(data: bytes) -> None:
        assert_holds(target, data)

    return prop


@pytest.mark.parametrize("target", PARSER_TARGETS)
def test_parser_target(target: str) -> None:
    _property(target, 200)()  # type: ignore[operator]


@pytest.mark.parametrize("target", CONNECTION_TARGETS)
def test_connection_target(target: str) -> None:
    _property(target, 100)()  # type: ignore[operator]


@pytest.mark.parametrize("target", FLOW_TARGETS)
def test_flow_target(target: str) -> None:
    _property(target, 60)()  # type: ignore[operator]


def test_every_target_is_run_as_a_property() -> None:
    assert set(targets.TARGETS) == {*PARSER_TARGETS, *CONNECTION_TARGETS, *FLOW_TARGETS}


@pytest.mark.parametrize("target", list(targets.TARGETS))
def test_no_internal_error_wraps_a_foreign_exception(target: str) -> None:
    """Over the whole seed corpus, and each seed cut short at every 97th byte: nothing
    ends in an InternalError around a foreign exception (nor in a foreign exception)."""
    seen_internal: list[str] = []
    for seed in targets.load_corpus(target):
        for data in (seed, *(seed[:i] for i in range(1, len(seed), 97))):
            try:
                targets.TARGETS[target](data)
            except targets.Finding as finding:
                if targets.is_known(finding):
                    continue
                raise
            except InternalError as exc:  # the targets judge these; double-check here
                assert targets.foreign_cause(exc) is None, exc
                seen_internal.append(str(exc))
            except TLSError:
                pass
    assert not [m for m in seen_internal if "while processing the peer's data" in m]


def test_oracle_flags_the_catch_all() -> None:
    """The oracle itself: an InternalError raised from a foreign exception (what
    next_event's catch-all makes) is a finding; a plain protocol error is not."""
    try:
        try:
            raise ValueError("boom")
        except ValueError as exc:
            raise InternalError("internal error while processing the peer's data") from exc
    except InternalError as wrapped:
        with pytest.raises(targets.Finding, match="wraps a foreign exception"):
            targets.check_exception(wrapped)
    with pytest.raises(targets.Finding, match="foreign exception escaped"):
        targets.check_exception(KeyError("x"))
    from tlsmith.errors import DecodeError

    targets.check_exception(DecodeError("short"))  # allowed: carries decode_error


def test_recorded_handshakes_still_replay() -> None:
    """The live recorded flights complete a handshake against fresh deterministic
    connections (the premise of the re-encryption targets); a corpus that no longer
    matches them is reported as a warning (rerun fuzz/make_corpus.py)."""
    flight = targets.server_flight13()
    client = targets.new_client("13")
    client.data_to_send()
    client.receive_data(flight.prefix + flight.protect(flight.plaintext))
    client.events()
    assert client.handshake_complete

    mtls = targets.client_flight13_mtls()
    server = targets.new_server("mtls")
    server.receive_data(targets.recording("mtls").client_flights[0] + mtls.prefix)
    server.events()
    server.receive_data(mtls.protect(mtls.plaintext))
    server.events()
    assert server.handshake_complete

    rec12 = targets.recording("12")
    client12 = targets.new_client("12")
    client12.data_to_send()
    client12.receive_data(b"".join(rec12.server_flights))
    client12.events()
    assert client12.handshake_complete
    for target, live in (("client13_flight", flight.plaintext),
                         ("server13_client_flight", mtls.plaintext),
                         ("client13_hrr_flight", targets.hrr_server_flight().plaintext),
                         ("server13_early", targets.encode_inners(
                             list(targets.early_flight().inners)))):
        if live not in targets.load_corpus(target):
            # Not a failure (the seeds still fuzz, only less deep), but worth fixing.
            warnings.warn(f"fuzz/corpus/{target}/ is stale (the handshake changed): run "
                          "python fuzz/make_corpus.py", stacklevel=1)


@dataclass
class Fed:
    """What a connection-target did with one input (see ``_fed``)."""

    conn: TLSConnection
    events: list[Event]
    sent: bytes
    error: TLSError | None


def _fed(monkeypatch: pytest.MonkeyPatch, target: str, data: bytes) -> Fed:
    """Run ``target`` on ``data``, recording the connection it feeds, the events, what
    the connection answered and the error that ended it (no EOF is given)."""
    fed: list[Fed] = []

    def spy(conn: TLSConnection, stream: bytes, *, eof: bool = True) -> None:
        conn.receive_data(stream)
        events: list[Event] = []
        try:
            events = conn.events()
        except TLSError as exc:
            fed.append(Fed(conn, events, b"", exc))
            return
        fed.append(Fed(conn, events, conn.data_to_send(), None))

    monkeypatch.setattr(targets, "feed", spy)
    targets.TARGETS[target](data)
    assert len(fed) == 1
    return fed[0]


# (target, seed origin in fuzz/corpus/<target>/, what the seed's connection must show)
_FLOW_SEEDS = (
    ("client13_hrr", "hrr-server", "hrr"),
    ("client13_hrr_flight", "hrr-server", "hrr"),
    ("server13_hrr", "hrr-client", "hrr"),
    ("server13_psk", "psk-hello-rebind-rest", "0rtt"),
    ("server13_psk", "psk-hrr-hello-rebind-rest", "hrr resumed no0rtt"),
    ("server13_psk", "psk-ke-hello-rebind", "psk_ke"),
    ("server13_early_skip", "resume13replay", "resumed no0rtt"),
    ("server13_early_skip", "resume13hrr", "hrr resumed no0rtt"),
    ("client13_resume", "resume13", "0rtt"),
    ("client13_resume", "resume13hrr", "hrr resumed no0rtt"),
    ("client13_resume", "resume13replay", "resumed no0rtt"),
    ("client13_resume_flight", "resume13", "0rtt"),
    ("client13_resume_flight", "resume13hrr", "hrr resumed no0rtt"),
    ("client13_resume_flight", "resume13replay", "resumed no0rtt"),
    ("client13_resume_flight", "resume13replay-early-data-claimed", "0rtt-claimed"),
    ("server13_early", "early", "0rtt"),
    ("client13_pha", "pha-request-keyupdate", "pha"),
    ("server13_pha", "pha-answer-keyupdate", "pha-server"),
    ("client12_resume", "resume12ticket", "resumed"),
    ("client12_resume", "resume12sid", "resumed"),
    ("server12_resume", "resume12ticket", "resumed"),
    ("server12_resume", "resume12sid", "resumed"),
)


def test_every_flow_target_has_a_seed_check() -> None:
    assert {case[0] for case in _FLOW_SEEDS} == set(FLOW_TARGETS)


@pytest.mark.parametrize(("target", "origin", "shows"), _FLOW_SEEDS)
def test_flow_seeds_complete_their_handshake(monkeypatch: pytest.MonkeyPatch, target: str,
                                             origin: str, shows: str) -> None:
    """The premise of each flow target: its live recorded seed (``flow_seeds``, what
    fuzz/make_corpus.py writes) drives the fresh deterministic connection through the
    flow it is about (HRR, resumption, 0-RTT accepted or skipped, the post-handshake
    CertificateRequest answered). A corpus without that seed is stale: a warning."""
    live = [data for t, o, data in targets.flow_seeds() if (t, o) == (target, origin)]
    assert len(live) == 1, (target, origin)
    if live[0] not in targets.load_corpus(target):
        warnings.warn(f"fuzz/corpus/{target}/ is stale (the handshake changed): run "
                      "python fuzz/make_corpus.py --prune", stacklevel=1)
    fed = _fed(monkeypatch, target, live[0])
    conn = fed.conn
    assert fed.error is None, f"{target}: {fed.error}"
    if shows == "psk_ke":
        # (No client Finished in this seed.) A ServerHello with pre_shared_key and no
        # key_share: a PSK-only handshake.
        record = targets.split_records(fed.sent)[0][1]
        hello = ServerHello.parse_body(record[5 + 4 :])
        kinds = {type(e).__name__ for e in hello.extensions}
        assert "PreSharedKeyServerHello" in kinds and "KeyShareServerHello" not in kinds
        return
    assert conn.handshake_complete, f"{target}: stuck in {conn.state_name}"
    info = conn.info
    assert info is not None
    assert info.hello_retry_request == ("hrr" in shows)
    if "resumed" in shows or "0rtt" in shows:
        assert info.resumed
    if "0rtt" in shows.split():
        assert info.early_data_accepted
        if not conn.is_client:
            assert any(isinstance(e, ApplicationData) and e.early for e in fed.events)
    if "no0rtt" in shows:
        assert not info.early_data_accepted
    if shows == "0rtt-claimed":
        # The refinished flight is accepted: the client believes its 0-RTT was read (the
        # server did not: the point is to reach what follows, EndOfEarlyData).
        assert info.early_data_accepted
    if shows == "pha-server":
        received = [e for e in fed.events if isinstance(e, ClientCertificateReceived)]
        assert received and received[0].verified and received[0].chain
    if shows == "pha":
        # The answer: Certificate, CertificateVerify, Finished (and the KeyUpdate).
        assert any(isinstance(e, KeyUpdated) for e in fed.events)
        assert len(fed.sent) > 500, fed.sent


@pytest.mark.parametrize("name", targets.RESUME13_FLOWS)
def test_refinish_is_the_identity_on_the_real_flight(name: str) -> None:
    """client13_resume_flight's bit 2 recomputes the real server Finished: on the
    unchanged flight it is the real one (the transcript prefix is right)."""
    plaintext = targets.resume_server_flight(name).plaintext
    assert targets.refinish(name, plaintext) == plaintext


def test_reseal_is_the_identity_on_the_real_flight(monkeypatch: pytest.MonkeyPatch
                                                   ) -> None:
    """client13_flight_resealed: on the real flight, reseal changes nothing (Ed25519 is
    deterministic); a flight with EncryptedExtensions changed completes once resealed."""
    plaintext = targets.server_flight13().plaintext
    secret = targets.recording("13").secrets["server_handshake_traffic_secret"]
    prefix = targets.flight13_transcript_prefix()
    assert targets.reseal(prefix, secret, plaintext) == plaintext
    unacked = [d for t, o, d in targets.flow_seeds()
               if (t, o) == ("client13_flight_resealed", "tls13-server-sni-unacked")]
    fed = _fed(monkeypatch, "client13_flight_resealed", unacked[0])
    assert fed.error is None and fed.conn.handshake_complete, fed.error


def test_rebind_reaches_past_the_binder(monkeypatch: pytest.MonkeyPatch) -> None:
    """server13_psk's bit 0: a ClientHello changed elsewhere (its random) still resumes
    once the binders are recomputed; without it, the binder check refuses it."""
    body = targets.psk_hello().body
    assert targets.rebind(body) == body
    changed = body[:2] + bytes([body[2] ^ 1]) + body[3:]  # the first byte of random
    fed = _fed(monkeypatch, "server13_psk", b"\x01" + changed)
    assert fed.error is None and fed.sent, fed.error
    fed = _fed(monkeypatch, "server13_psk", b"\x00" + changed)
    assert isinstance(fed.error, DecryptError) and "binder" in str(fed.error)


# (target, seed origin, the tlsmith code its seed must reach: module, attribute path)
_REACHES = (
    ("client13_hrr", "hrr-server", "handshake.client13", "ExpectEncryptedExtensions.handle"),
    ("client13_hrr_flight", "hrr-server", "handshake.client13",
     "ExpectEncryptedExtensions.handle"),
    ("server13_hrr", "hrr-client", "handshake.server13", "ExpectClientHelloAgain.handle"),
    ("server13_psk", "psk-hello-rebind", "handshake.psk13", "_verify_binder"),
    ("server13_psk", "psk-hrr-hello-rebind", "handshake.psk13", "_verify_binder"),
    ("server13_psk", "psk-hello-rebind-rest", "handshake.server13",
     "ExpectEndOfEarlyData.handle"),
    ("server13_early_skip", "resume13replay", "connection",
     "TLSConnection._skip_early_record"),
    ("server13_early_skip", "resume13hrr", "connection", "TLSConnection._skip_early_record"),
    ("client13_resume", "resume13", "handshake.psk13", "check_selected_identity"),
    ("client13_resume_flight", "resume13replay-early-data-claimed", "handshake.client13",
     "ExpectFinished.handle"),
    ("server13_early", "early", "handshake.server13", "ExpectEndOfEarlyData.handle"),
    ("client13_pha", "pha-request", "handshake.pha13", "answer_certificate_request"),
    ("server13_pha", "pha-answer", "handshake.pha13", "ExpectPhaFinished.handle"),
    ("client12_resume", "resume12ticket", "handshake.client12",
     "ExpectResumedFinished.handle"),
    ("server12_resume", "resume12sid", "handshake.server12", "ExpectResumedFinished.handle"),
)


@pytest.mark.parametrize(("target", "origin", "module", "attr"), _REACHES)
def test_flow_seeds_reach_their_code(monkeypatch: pytest.MonkeyPatch, target: str,
                                     origin: str, module: str, attr: str) -> None:
    """The oracle would see a bug where each flow target is aimed: with the function
    made to raise a foreign exception, the target's live seed is a finding."""
    import importlib

    owner: object = importlib.import_module(f"tlsmith.{module}")
    *path, name = attr.split(".")
    for part in path:
        owner = getattr(owner, part)

    def boom(*args: object, **kwargs: object) -> None:
        raise ZeroDivisionError("planted")

    monkeypatch.setattr(owner, name, boom)
    seed = [d for t, o, d in targets.flow_seeds() if (t, o) == (target, origin)]
    assert len(seed) == 1
    finding = targets.run_one(target, seed[0])
    assert finding is not None and "planted" in str(finding), finding
