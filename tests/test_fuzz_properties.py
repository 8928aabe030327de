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
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fuzz"))

import targets

from tlsmith.errors import InternalError, TLSError

CONNECTION_TARGETS = ("server", "client13", "client12", "server12", "client13_flight",
                      "server13_client_flight")
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
                         ("server13_client_flight", mtls.plaintext)):
        if live not in targets.load_corpus(target):
            # Not a failure (the seeds still fuzz, only less deep), but worth fixing.
            warnings.warn(f"fuzz/corpus/{target}/ is stale (the handshake changed): run "
                          "python fuzz/make_corpus.py", stacklevel=1)
