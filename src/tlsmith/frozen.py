"""A faster ``__init__`` for hot frozen, slotted dataclasses.

A frozen dataclass's generated ``__init__`` stores each field through
``object.__setattr__`` (its own ``__setattr__`` refuses), about 0.1 us a field on
CPython 3.11. ``fast_init`` replaces it with one that stores through the slots' member
descriptors, about half that. The class stays what it was: frozen (assignment still
raises ``FrozenInstanceError``), slotted, with the same fields, signature, defaults,
equality, hash and repr; type checkers see the dataclass as declared.

For classes built many times per handshake or per record (trace records, events);
only plain fields and plain defaults (no ``default_factory``, no ``__post_init__``,
no ``InitVar``), which ``fast_init`` checks.
"""

from __future__ import annotations

import dataclasses
import operator
from collections import deque
from collections.abc import Callable, Iterable
from itertools import repeat
from typing import Any, TypeVar

_T = TypeVar("_T")
_MANY = 8  # fields from which the stores run as one map() (cheaper past ~6)
_consume: Callable[[Iterable[Any]], None] = deque(maxlen=0).extend


def fast_init(cls: type[_T]) -> type[_T]:
    """Decorator, applied above ``@dataclass(frozen=True, slots=True)``."""
    params = getattr(cls, "__dataclass_params__", None)
    if params is None or not params.frozen or "__slots__" not in cls.__dict__:
        raise TypeError(f"{cls.__name__}: fast_init is for frozen, slotted dataclasses")
    if hasattr(cls, "__post_init__"):
        raise TypeError(f"{cls.__name__}: fast_init does not call __post_init__")
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]  # (checked just above)
    names: list[str] = []
    namespace: dict[str, Any] = {}
    defaults: list[Any] = []
    for f in fields:  # (ClassVars and InitVars are not fields)
        if not f.init or f.kw_only or f.default_factory is not dataclasses.MISSING:
            raise TypeError(f"{cls.__name__}.{f.name}: fast_init needs plain fields")
        if f.default is not dataclasses.MISSING:
            defaults.append(f.default)
        elif defaults:
            raise TypeError(f"{cls.__name__}.{f.name}: a field without default after one with")
        names.append(f.name)
        slot = next(k.__dict__[f.name] for k in cls.__mro__ if f.name in k.__dict__)
        namespace[f"_set_{f.name}"] = slot.__set__
    if len(names) >= _MANY:
        # Many fields: one C-level pass over the slot setters (a third of the time of a
        # HandshakeInfo's 33 stores, and a few opcodes instead of six per field).
        namespace.update(_consume=_consume, _map=map, _call=operator.call, _repeat=repeat,
                         _setters=tuple(namespace[f"_set_{n}"] for n in names))
        body = (f"    _consume(_map(_call, _setters, _repeat(self, {len(names)}), "
                f"({', '.join(names)},)))\n")
    else:
        body = "".join(f"    _set_{n}(self, {n})\n" for n in names) or "    pass\n"
    source = f"def __init__(self, {', '.join(names)}):\n{body}"
    exec(source, namespace)  # (the source is made of the field names only)
    init = namespace["__init__"]
    init.__defaults__ = tuple(defaults) or None
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__module__ = cls.__module__
    init.__doc__ = cls.__init__.__doc__
    init.__annotations__ = dict(getattr(cls.__init__, "__annotations__", {}))
    setattr(cls, "__init__", init)  # noqa: B010 (mypy: no assigning to a method)
    return cls
