"""tlsmith: a TLS 1.2 + 1.3 implementation whose every step can be seen and explained."""

__version__ = "0.1.0"
