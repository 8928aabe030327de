"""An offline gallery of broken TLS servers (like badssl.com), all on 127.0.0.1.

    from tlsmith.gallery import CASES, start_gallery

    with start_gallery(base_port=0, directory=tmp_path) as gallery:
        for s in gallery.servers:  # GalleryServer(name, port, cafile, expect, ...)
            ...

Every server's certificate comes from one gallery CA (``cafile``, the same for all
cases): a client that trusts it and asks for "localhost" connects to ``good`` and fails
on each broken case for the reason its ``expect`` (a ``tlsmith.findings`` id) names.
"""

from tlsmith.gallery.cases import CASES, HOST, SERVER_NAME, GalleryCase, default_gallery_dir
from tlsmith.gallery.servers import Gallery, GalleryServer, start_gallery

__all__ = [
    "CASES",
    "HOST",
    "SERVER_NAME",
    "Gallery",
    "GalleryCase",
    "GalleryServer",
    "default_gallery_dir",
    "start_gallery",
]
