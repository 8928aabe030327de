"""The built-in development CA, so that every example and test works offline.

``DevCA`` is a one-level CA (root signs leaves directly). Its certificates follow the
RFC 5280 profile closely enough to pass the strict CA/Browser Forum checks of
``cryptography.x509.verification`` and ``openssl verify -x509_strict``:

* CA: basicConstraints CA:TRUE, pathLenConstraint 0 (critical); keyUsage keyCertSign +
  cRLSign (critical); subjectKeyIdentifier; authorityKeyIdentifier.
* Leaf: basicConstraints CA:FALSE (critical); keyUsage digitalSignature (+
  keyEncipherment for RSA, for TLS 1.2 RSA key exchange) (critical); subjectAltName
  with DNS names and IP addresses; extendedKeyUsage serverAuth or clientAuth; SKI; AKI.

Files: ``ca.pem`` and ``ca.key`` in the CA's directory (the key is mode 0600).
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, mldsa, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tlsmith.errors import UsageError
from tlsmith.x509.keys import PrivateKey, load_certificate_chain, load_private_key

__all__ = [
    "CA_KEY_TYPES",
    "DEFAULT_NAMES",
    "KEY_TYPES",
    "MLDSA_KEY_TYPES",
    "DevCA",
    "Issued",
    "default_data_dir",
    "ensure_dev_credentials",
    "generate_private_key",
]

#: Key types the CA can issue (and be): the ``key_type`` strings accepted everywhere.
KEY_TYPES = (
    "ecdsa-p256",
    "ecdsa-p384",
    "ecdsa-p521",
    "rsa-2048",
    "rsa-3072",
    "rsa-4096",
    "ed25519",
    "ed448",
)
#: Key types a CA may have: the Web PKI profile that cryptography.x509.verification
#: enforces forbids EdDSA signatures on certificates (EdDSA *leaf keys* are fine).
CA_KEY_TYPES = tuple(kind for kind in KEY_TYPES if not kind.startswith("ed"))
#: Post-quantum leaf keys (FIPS 204), for TLS 1.3 only (draft-ietf-tls-mldsa); not in
#: KEY_TYPES because TLS 1.2 peers and most verifiers cannot use them yet.
MLDSA_KEY_TYPES = ("mldsa-44", "mldsa-65", "mldsa-87")
DEFAULT_NAMES = ("localhost", "127.0.0.1", "::1")
DEFAULT_CA_NAME = "tlsmith development CA"

CA_FILE = "ca.pem"
CA_KEY_FILE = "ca.key"

_CLOCK_SKEW = timedelta(minutes=5)  # back-date notBefore so a slightly slow peer accepts it
_RENEW_BEFORE = timedelta(days=1)  # reissue what expires sooner than this
_UB_COMMON_NAME = 64  # RFC 5280 Appendix A: ub-common-name


def generate_private_key(key_type: str) -> PrivateKey:
    """A fresh private key of ``key_type`` (one of KEY_TYPES or MLDSA_KEY_TYPES)."""
    if key_type == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    if key_type == "ed448":
        return ed448.Ed448PrivateKey.generate()
    curves: dict[str, ec.EllipticCurve] = {
        "ecdsa-p256": ec.SECP256R1(),
        "ecdsa-p384": ec.SECP384R1(),
        "ecdsa-p521": ec.SECP521R1(),
    }
    if key_type in curves:
        return ec.generate_private_key(curves[key_type])
    if key_type.startswith("rsa-") and key_type in KEY_TYPES:
        return rsa.generate_private_key(public_exponent=65537, key_size=int(key_type[4:]))
    if key_type == "mldsa-44":
        return mldsa.MLDSA44PrivateKey.generate()
    if key_type == "mldsa-65":
        return mldsa.MLDSA65PrivateKey.generate()
    if key_type == "mldsa-87":
        return mldsa.MLDSA87PrivateKey.generate()
    raise UsageError(f"unknown key type {key_type!r}; choose one of {', '.join(KEY_TYPES)}")


def _signature_hash(key: PrivateKey) -> hashes.SHA256 | hashes.SHA384 | hashes.SHA512 | None:
    """The hash to sign with: matched to the curve (CA/B BR §7.1.3.2); none for EdDSA."""
    if isinstance(key, ec.EllipticCurvePrivateKey):
        if key.curve.key_size == 384:
            return hashes.SHA384()
        if key.curve.key_size == 521:
            return hashes.SHA512()
        return hashes.SHA256()
    if isinstance(key, rsa.RSAPrivateKey):
        return hashes.SHA256()
    return None


def key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@dataclass(frozen=True)
class Issued:
    """A certificate issued by the dev CA, with its key (PEM), and where it was written."""

    cert_pem: bytes
    key_pem: bytes
    chain_pem: bytes  # leaf, then the CA certificate
    cert_path: Path | None = None
    key_path: Path | None = None
    chain_path: Path | None = None

    @property
    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert_pem)

    @property
    def private_key(self) -> PrivateKey:
        return load_private_key(self.key_pem)

    def write(self, directory: str | os.PathLike[str], stem: str) -> Issued:
        """Write ``<stem>.pem``, ``<stem>.key`` (0600), ``<stem>-chain.pem``; return with paths."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        cert_path = directory / f"{stem}.pem"
        key_path = directory / f"{stem}.key"
        chain_path = directory / f"{stem}-chain.pem"
        write_atomic(key_path, self.key_pem, private=True)
        write_atomic(cert_path, self.cert_pem)
        write_atomic(chain_path, self.chain_pem)
        return replace(self, cert_path=cert_path, key_path=key_path, chain_path=chain_path)

    def write_bundle(self, directory: str | os.PathLike[str], stem: str) -> Issued:
        """Write ``<stem>.pem`` (leaf + CA) and ``<stem>-key.pem`` (0600), as mkcert does.

        The returned ``cert_path`` and ``chain_path`` are both the ``<stem>.pem`` file.
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        chain_path = directory / f"{stem}.pem"
        key_path = directory / f"{stem}-key.pem"
        write_atomic(key_path, self.key_pem, private=True)
        write_atomic(chain_path, self.chain_pem)
        return replace(self, cert_path=chain_path, key_path=key_path, chain_path=chain_path)


class DevCA:
    """A development certificate authority: create or load it, then ``issue`` leaves."""

    def __init__(
        self,
        certificate: x509.Certificate,
        private_key: PrivateKey,
        *,
        ca_path: Path | None = None,
        key_path: Path | None = None,
    ) -> None:
        if certificate.public_key() != private_key.public_key():
            raise UsageError("the CA certificate and the CA key do not belong together")
        self.certificate = certificate
        self.private_key = private_key
        self.ca_path = ca_path
        self.key_path = key_path

    def __repr__(self) -> str:
        where = f" at {self.ca_path}" if self.ca_path else ""
        return f"DevCA({self.certificate.subject.rfc4514_string()}{where})"

    @property
    def ca_pem(self) -> bytes:
        return _cert_pem(self.certificate)

    @property
    def subject_key_identifier(self) -> x509.SubjectKeyIdentifier:
        try:
            return self.certificate.extensions.get_extension_for_class(
                x509.SubjectKeyIdentifier
            ).value
        except x509.ExtensionNotFound:
            return x509.SubjectKeyIdentifier.from_public_key(self.private_key.public_key())

    # -- creating, saving, loading ----------------------------------------------------

    @classmethod
    def create(
        cls,
        common_name: str = DEFAULT_CA_NAME,
        key_type: str = "ecdsa-p256",
        now: datetime | None = None,
        *,
        days: int = 3650,
    ) -> DevCA:
        """A new self-signed CA valid for ``days`` from ``now`` (in memory; see ``save``)."""
        if key_type not in CA_KEY_TYPES:
            raise UsageError(
                f"a CA key cannot be {key_type!r}: Web PKI verifiers reject EdDSA-signed "
                f"certificates; choose one of {', '.join(CA_KEY_TYPES)}"
            )
        now = _utc(now)
        key = generate_private_key(key_type)
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.COMMON_NAME, common_name[:_UB_COMMON_NAME]),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "tlsmith"),
            ]
        )
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _CLOCK_SKEW)
            .not_valid_after(now + timedelta(days=days))
            # RFC 5280 §4.2.1.9: critical in CA certificates; pathLen 0 = leaves only.
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            # RFC 5280 §4.2.1.3: keyCertSign for a certificate signer.
            .add_extension(_key_usage(key_cert_sign=True, crl_sign=True), critical=True)
            .add_extension(ski, critical=False)  # §4.2.1.2
            .add_extension(  # §4.2.1.1 (optional for self-signed, required by some verifiers)
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski),
                critical=False,
            )
            .sign(key, _signature_hash(key))
        )
        return cls(certificate, key)

    def save(self, directory: str | os.PathLike[str]) -> DevCA:
        """Write ``ca.pem`` and ``ca.key`` (0600) into ``directory``; returns self."""
        directory = Path(directory)
        _make_private_dir(directory)
        write_atomic(directory / CA_KEY_FILE, key_pem(self.private_key), private=True)
        write_atomic(directory / CA_FILE, self.ca_pem)
        self.ca_path = directory / CA_FILE
        self.key_path = directory / CA_KEY_FILE
        return self

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> DevCA:
        """Load ``ca.pem`` and ``ca.key`` from ``directory``."""
        directory = Path(directory)
        ca_path, key_path = directory / CA_FILE, directory / CA_KEY_FILE
        if not ca_path.is_file() or not key_path.is_file():
            raise UsageError(
                f"no development CA in {directory} (expected {CA_FILE} and {CA_KEY_FILE})"
            )
        certificate = load_certificate_chain(ca_path)[0]
        key = load_private_key(key_path)
        return cls(certificate, key, ca_path=ca_path, key_path=key_path)

    @classmethod
    def load_or_create(
        cls,
        directory: str | os.PathLike[str],
        *,
        common_name: str = DEFAULT_CA_NAME,
        key_type: str = "ecdsa-p256",
        now: datetime | None = None,
    ) -> DevCA:
        """Load the CA in ``directory``; create and save one if it is missing or expiring."""
        directory = Path(directory)
        _make_private_dir(directory)
        with directory_lock(directory):
            return cls._load_or_create_unlocked(directory, common_name, key_type, _utc(now))

    @classmethod
    def replace_in(
        cls,
        directory: str | os.PathLike[str],
        *,
        common_name: str = DEFAULT_CA_NAME,
        key_type: str = "ecdsa-p256",
        now: datetime | None = None,
    ) -> DevCA:
        """Create a new CA in ``directory``, replacing the one there (if any).

        Certificates the old CA issued no longer chain to it; ``ensure_dev_credentials``
        reissues its own localhost certificates on its next call.
        """
        directory = Path(directory)
        _make_private_dir(directory)
        with directory_lock(directory):
            return cls.create(common_name, key_type, _utc(now)).save(directory)

    @classmethod
    def _load_or_create_unlocked(
        cls, directory: Path, common_name: str, key_type: str, now: datetime
    ) -> DevCA:
        if (directory / CA_FILE).exists() or (directory / CA_KEY_FILE).exists():
            ca = cls.load(directory)
            if ca.certificate.not_valid_after_utc - now > _RENEW_BEFORE:
                return ca
        return cls.create(common_name, key_type, now).save(directory)

    # -- issuing ----------------------------------------------------------------------

    def issue(
        self,
        names: Sequence[str] = DEFAULT_NAMES,
        key_type: str = "ecdsa-p256",
        days: int = 30,
        not_before: datetime | None = None,
        not_after: datetime | None = None,
        client: bool = False,
        *,
        now: datetime | None = None,
    ) -> Issued:
        """Issue a leaf for ``names`` (DNS names and IP literals) with a fresh key.

        Validity defaults to ``now`` (minus 5 minutes of clock slack) for ``days``;
        pass ``not_before``/``not_after`` to make expired or not-yet-valid certificates
        for tests. ``client=True`` gives clientAuth instead of serverAuth.
        """
        if isinstance(names, str):
            names = (names,)
        if not names:
            raise UsageError("a certificate needs at least one name")
        general_names = [_general_name(name) for name in names]
        now = _utc(now)
        start = _utc(not_before) if not_before is not None else None
        end = _utc(not_after) if not_after is not None else None
        if start is None:
            start = now - _CLOCK_SKEW
            if end is not None:
                start = min(start, end - timedelta(days=days))
        if end is None:
            end = max(start, now) + timedelta(days=days)
        if end <= start:
            raise UsageError(f"not_after ({end}) must be later than not_before ({start})")

        key = generate_private_key(key_type)
        common_name = str(names[0])
        subject = (
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
            if len(common_name) <= _UB_COMMON_NAME
            else x509.Name([])
        )
        usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
        certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                _key_usage(
                    digital_signature=True, key_encipherment=isinstance(key, rsa.RSAPrivateKey)
                ),
                critical=True,
            )
            # RFC 5280 §4.2.1.6: critical when the subject is empty.
            .add_extension(
                x509.SubjectAlternativeName(general_names), critical=not list(subject)
            )
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(
                    self.subject_key_identifier
                ),
                critical=False,
            )
            .sign(self.private_key, _signature_hash(self.private_key))
        )
        cert_pem = _cert_pem(certificate)
        return Issued(cert_pem=cert_pem, key_pem=key_pem(key), chain_pem=cert_pem + self.ca_pem)

    def issued(self, certificate: x509.Certificate) -> bool:
        """Whether this CA signed ``certificate``."""
        try:
            certificate.verify_directly_issued_by(self.certificate)
        except Exception:  # InvalidSignature, name mismatch
            return False
        return True


def _key_usage(
    *,
    digital_signature: bool = False,
    key_encipherment: bool = False,
    key_cert_sign: bool = False,
    crl_sign: bool = False,
) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=key_encipherment,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=key_cert_sign,
        crl_sign=crl_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _general_name(name: str) -> x509.GeneralName:
    """An IP literal becomes an iPAddress SAN, anything else a dNSName (A-label)."""
    text = name.strip()
    try:
        return x509.IPAddress(ipaddress.ip_address(text.strip("[]")))
    except ValueError:
        pass
    text = text.rstrip(".").lower()
    try:
        if not text.isascii():
            text = text.encode("idna").decode("ascii")
        return x509.DNSName(text)
    except (UnicodeError, ValueError) as exc:
        raise UsageError(f"{name!r} is neither a host name nor an IP address") from exc


# --- the per-user credentials the CLI and demos use -------------------------------------


def default_data_dir() -> Path:
    """Where tlsmith keeps its dev CA: $TLSMITH_HOME, else $XDG_DATA_HOME/tlsmith,
    else ~/.local/share/tlsmith (XDG Base Directory spec)."""
    home = os.environ.get("TLSMITH_HOME")
    if home:
        return Path(home).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME")
    if xdg and os.path.isabs(xdg):  # the spec says to ignore relative paths
        return Path(xdg) / "tlsmith"
    return Path.home() / ".local" / "share" / "tlsmith"


def ensure_dev_credentials(
    directory: Path | None = None,
    key_types: Sequence[str] = ("ecdsa-p256", "rsa-2048", "ed25519"),
    *,
    now: datetime | None = None,
) -> dict[str, tuple[Path, Path]]:
    """The CA plus a localhost certificate for each key type: {key_type: (cert, key)}.

    Files are reused while valid; a leaf is reissued when it is missing, unreadable, not
    signed by the current CA, or expires within a day. The certificate file holds the
    leaf; ``localhost-<type>-chain.pem`` beside it holds leaf + CA.
    """
    directory = Path(directory) if directory is not None else default_data_dir()
    _make_private_dir(directory)
    moment = _utc(now)
    result: dict[str, tuple[Path, Path]] = {}
    with directory_lock(directory):
        ca = DevCA._load_or_create_unlocked(directory, DEFAULT_CA_NAME, "ecdsa-p256", moment)
        for key_type in key_types:
            if key_type not in KEY_TYPES:
                raise UsageError(
                    f"unknown key type {key_type!r}; choose one of {', '.join(KEY_TYPES)}"
                )
            stem = f"localhost-{key_type}"
            cert_path, key_path = directory / f"{stem}.pem", directory / f"{stem}.key"
            if not _still_good(ca, cert_path, key_path, moment):
                ca.issue(DEFAULT_NAMES, key_type, now=moment).write(directory, stem)
            result[key_type] = (cert_path, key_path)
    return result


def _still_good(ca: DevCA, cert_path: Path, key_path: Path, now: datetime) -> bool:
    try:
        certificate = load_certificate_chain(cert_path)[0]
        key = load_private_key(key_path)
    except UsageError:
        return False
    return (
        certificate.public_key() == key.public_key()
        and ca.issued(certificate)
        and certificate.not_valid_before_utc <= now
        and certificate.not_valid_after_utc - now > _RENEW_BEFORE
        and (cert_path.parent / f"{cert_path.stem}-chain.pem").is_file()
    )


# --- files ------------------------------------------------------------------------------


def _utc(moment: datetime | None) -> datetime:
    if moment is None:
        return datetime.now(UTC)
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _make_private_dir(directory: Path) -> None:
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)


def write_atomic(path: Path, data: bytes, *, private: bool = False) -> None:
    """Write via a temporary file and rename, so a reader never sees half a file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o600 if private else 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def directory_lock(directory: Path) -> Iterator[None]:
    """Serialise CA creation between processes (e.g. pytest-xdist workers)."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock, last writer wins
        yield
        return
    with open(directory / ".lock", "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

