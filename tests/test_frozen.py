"""fast_init: a faster __init__ that leaves a frozen slotted dataclass as it was."""

from __future__ import annotations

import copy
import dataclasses
import inspect
import pickle

import pytest

from tlsmith.events import ApplicationData, HandshakeInfo
from tlsmith.frozen import fast_init
from tlsmith.observe import Epoch, MessageTrace


@dataclasses.dataclass(frozen=True, slots=True)
class _Plain:
    a: int
    b: str = "x"


@fast_init
@dataclasses.dataclass(frozen=True, slots=True)
class _Fast:
    a: int
    b: str = "x"


@fast_init
@dataclasses.dataclass(frozen=True, slots=True)
class _Child(_Fast):
    c: bytes = b""


def test_same_signature_values_and_dataclass_behaviour() -> None:
    assert str(inspect.signature(_Fast)) == str(inspect.signature(_Plain))
    f = _Fast(1)
    assert (f.a, f.b) == (1, "x")
    assert _Fast(a=2, b="y") == _Fast(2, "y") != f
    assert hash(_Fast(3)) == hash(_Fast(3))
    assert repr(f) == "_Fast(a=1, b='x')"
    assert dataclasses.replace(f, b="z") == _Fast(1, "z")
    assert pickle.loads(pickle.dumps(f)) == f
    assert copy.deepcopy(f) == f
    assert _Child(1, "y", b"c") == _Child(a=1, b="y", c=b"c")
    with pytest.raises(TypeError):
        _Fast()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        _Fast(1, "x", 3)  # type: ignore[call-arg]


def test_still_frozen_and_slotted() -> None:
    f = _Fast(1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        f.a = 2  # type: ignore[misc]
    assert not hasattr(f, "__dict__")


def test_project_classes_keep_their_fields() -> None:
    m = MessageTrace("sent", "Finished", None, 36, Epoch.HANDSHAKE, 1.0)
    assert m.raw == b"" and m.length == 36
    assert ApplicationData(b"x").early is False
    assert ApplicationData(b"x", early=True).early is True
    info_fields = [f.name for f in dataclasses.fields(HandshakeInfo)]
    assert list(inspect.signature(HandshakeInfo).parameters) == info_fields


@dataclasses.dataclass(frozen=True, slots=True)
class _PlainMany:
    a: int
    b: int
    c: int
    d: int
    e: int
    f: int
    g: int
    h: int = 8
    i: str = "i"


@fast_init
@dataclasses.dataclass(frozen=True, slots=True)
class _FastMany:  # (enough fields for the one-pass stores)
    a: int
    b: int
    c: int
    d: int
    e: int
    f: int
    g: int
    h: int = 8
    i: str = "i"


def test_many_fields_stored_in_one_pass() -> None:
    assert str(inspect.signature(_FastMany)) == str(inspect.signature(_PlainMany))
    f = _FastMany(1, 2, 3, 4, 5, 6, 7, i="x")
    assert dataclasses.astuple(f) == dataclasses.astuple(_PlainMany(1, 2, 3, 4, 5, 6, 7,
                                                                    i="x"))
    assert repr(f) == repr(_PlainMany(1, 2, 3, 4, 5, 6, 7, i="x")).replace("Plain", "Fast")
    assert dataclasses.replace(f, a=0) == _FastMany(0, 2, 3, 4, 5, 6, 7, 8, "x")
    assert pickle.loads(pickle.dumps(f)) == f
    with pytest.raises(dataclasses.FrozenInstanceError):
        f.a = 2  # type: ignore[misc]
    with pytest.raises(TypeError):
        _FastMany(1, 2)  # type: ignore[call-arg]


def test_refuses_what_it_cannot_reproduce() -> None:
    @dataclasses.dataclass(slots=True)
    class NotFrozen:
        a: int

    with pytest.raises(TypeError):
        fast_init(NotFrozen)

    @dataclasses.dataclass(frozen=True, slots=True)
    class Factory:
        a: list[int] = dataclasses.field(default_factory=list)

    with pytest.raises(TypeError):
        fast_init(Factory)

    @dataclasses.dataclass(frozen=True, slots=True)
    class KwOnly:
        a: int = dataclasses.field(kw_only=True)

    with pytest.raises(TypeError):
        fast_init(KwOnly)

    @dataclasses.dataclass(frozen=True, slots=True)
    class PostInit:
        a: int

        def __post_init__(self) -> None:
            pass

    with pytest.raises(TypeError):
        fast_init(PostInit)
