"""tlsmith: a TLS 1.3 and TLS 1.2 implementation whose every step can be seen and
explained.

The public names are imported lazily, so ``import tlsmith.codec`` stays light.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "CertifiedKey": "tlsmith.config",
    "ClientConfig": "tlsmith.config",
    "ServerConfig": "tlsmith.config",
    "TLSConnection": "tlsmith.connection",
    "TLSServer": "tlsmith.io.blocking",
    "TLSSocket": "tlsmith.io.blocking",
    "connect": "tlsmith.io.blocking",
    "TrustStore": "tlsmith.x509.verify",
}
__all__ = [
    "CertifiedKey",
    "ClientConfig",
    "ServerConfig",
    "TLSConnection",
    "TLSServer",
    "TLSSocket",
    "TrustStore",
    "connect",
]

if TYPE_CHECKING:
    from tlsmith.config import CertifiedKey, ClientConfig, ServerConfig
    from tlsmith.connection import TLSConnection
    from tlsmith.io.blocking import TLSServer, TLSSocket, connect
    from tlsmith.x509.verify import TrustStore


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'tlsmith' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value  # found directly next time (import_module runs Python code)
    return value
