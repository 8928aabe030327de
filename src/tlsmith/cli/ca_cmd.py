"""``tlsmith ca``: the development CA for your own servers and clients (like mkcert).

The CA is the one ``tlsmith serve`` uses (``ca.pem`` and ``ca.key`` in the data
directory); ``issue`` writes ``<name>.pem`` (leaf + CA) and ``<name>-key.pem`` (0600).
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID
from rich.console import Console
from rich.text import Text

from tlsmith.errors import UsageError
from tlsmith.x509.devca import CA_FILE, CA_KEY_FILE, DevCA, default_data_dir

#: ``--key-type`` choices and the devca key types they mean.
KEY_TYPES = {"ecdsa": "ecdsa-p256", "rsa": "rsa-2048", "ed25519": "ed25519"}
DEFAULT_DAYS = 90
#: The longest validity Apple platforms (and so most clients) accept for a TLS
#: certificate issued by a user-trusted CA.
MAX_DAYS = 825
ISSUED_DIR = "issued"
NSS_NICKNAME = "tlsmith-dev-ca"

_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_TIME = "%Y-%m-%dT%H:%M:%SZ"


# --- small helpers ----------------------------------------------------------------------


def fingerprint(certificate: x509.Certificate) -> str:
    """SHA-256 of the DER certificate, as ``openssl x509 -fingerprint -sha256`` prints it."""
    return ":".join(f"{b:02X}" for b in certificate.fingerprint(hashes.SHA256()))


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(_TIME)


def _validity(certificate: x509.Certificate) -> str:
    start, end = certificate.not_valid_before_utc, certificate.not_valid_after_utc
    days = round((end - start) / timedelta(days=1))
    return f"{_when(start)} → {_when(end)} ({days} days)"


def _key_description(certificate: x509.Certificate) -> str:
    key = certificate.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"ECDSA P-{key.curve.key_size}"
    if isinstance(key, rsa.RSAPublicKey):
        return f"RSA-{key.key_size}"
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519"
    if isinstance(key, ed448.Ed448PublicKey):
        return "Ed448"
    return type(key).__name__


def _sans(certificate: x509.Certificate) -> list[str]:
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    names = [f"DNS:{n}" for n in san.value.get_values_for_type(x509.DNSName)]
    names += [f"IP:{a}" for a in san.value.get_values_for_type(x509.IPAddress)]
    return names


def _usage(certificate: x509.Certificate) -> str:
    """``server``, ``client``, ``server+client`` or ``-``, from extendedKeyUsage."""
    try:
        eku = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return "-"
    kinds = [kind for oid, kind in ((ExtendedKeyUsageOID.SERVER_AUTH, "server"),
                                    (ExtendedKeyUsageOID.CLIENT_AUTH, "client"))
             if oid in eku]
    return "+".join(kinds) or "-"


def _q(path: Path | str) -> str:
    return shlex.quote(str(path))


def _say(console: Console, text: str) -> None:
    """Print ``text`` as it is: no markup, highlighting or :emoji: codes (a fingerprint
    holds ``:CD:``, which rich would turn into 💿)."""
    console.print(text, markup=False, highlight=False, emoji=False)


def _row(console: Console, label: str, value: str) -> None:
    _say(console, f"  {label:<12} {value}")


def _heading(console: Console, text: str) -> None:
    console.print(Text(text, style="bold"))


def check_name(name: str, *, ip_only: bool = False) -> str:
    """``name`` normalised (lower case, A-labels, no trailing dot), or a usage error
    naming what is wrong with it. IP addresses are recognised by their form."""
    text = name.strip()
    try:
        return str(ipaddress.ip_address(text.strip("[]")))
    except ValueError:
        if ip_only:
            raise click.BadParameter(f"{name!r} is not an IP address",
                                     param_hint="'--ip'") from None
    bad = f"{name!r} is not a valid host name or IP address"
    text = text.rstrip(".").lower()
    if not text:
        raise click.BadParameter(f"{bad}: it is empty", param_hint="'NAME'")
    if not text.isascii():
        try:
            text = text.encode("idna").decode("ascii")
        except UnicodeError as exc:
            raise click.BadParameter(f"{bad} ({exc})", param_hint="'NAME'") from exc
    labels = text.split(".")
    if labels[0] == "*":
        if len(labels) < 2:
            raise click.BadParameter(f"{bad}: a wildcard needs a domain after '*.'",
                                     param_hint="'NAME'")
        labels = labels[1:]
    if len(text) > 253:
        raise click.BadParameter(f"{bad}: it is longer than 253 characters",
                                 param_hint="'NAME'")
    for label in labels:
        if not _LABEL.match(label):
            why = ("'*' is allowed only as the whole first label" if "*" in label else
                   "it has an empty label" if not label else
                   f"the label {label!r} may only use letters, digits and inner hyphens "
                   "(at most 63 characters)")
            raise click.BadParameter(f"{bad}: {why}", param_hint="'NAME'")
    if labels[-1].isdigit():
        raise click.BadParameter(f"{bad}: it looks like an IP address but is not one",
                                 param_hint="'NAME'")
    return text


def file_stem(name: str) -> str:
    """A file name for ``name``: ``*.example.com`` -> ``_wildcard.example.com``,
    ``::1`` -> ``__1``."""
    return name.replace("*", "_wildcard").replace(":", "_")


def _load_ca(directory: Path) -> DevCA | None:
    if not (directory / CA_FILE).exists() and not (directory / CA_KEY_FILE).exists():
        return None
    try:
        return DevCA.load(directory)
    except UsageError as exc:
        raise click.ClickException(
            f"cannot read the development CA in {directory}: {exc}. Run "
            "`tlsmith ca init --force` to make a new one.") from exc


# --- init --------------------------------------------------------------------------------


def run_init(*, force: bool, console: Console) -> int:
    directory = default_data_dir()
    try:
        existing = _load_ca(directory)
    except click.ClickException:
        if not force:
            raise
        existing = None
        replacing = True
    else:
        replacing = existing is not None and force
    if existing is not None and not force:
        _heading(console, "The development CA already exists (--force replaces it)")
        ca = existing
    elif replacing:
        ca = DevCA.replace_in(directory)
        _heading(console, "Replaced the development CA")
    else:
        ca = DevCA.load_or_create(directory)
        _heading(console, "Created the development CA")
    _describe_ca(ca, console)
    if replacing:
        stale = list(_issued_files(directory / ISSUED_DIR))
        console.print()
        _say(
            console,
            "Certificates the old CA issued no longer verify"
            + (f" ({len(stale)} in {directory / ISSUED_DIR}): issue them again with "
               "`tlsmith ca issue`" if stale else "")
            + ". `tlsmith serve` reissues its own localhost certificates by itself. If you "
            f"trusted the old CA, remove it (e.g. certutil -d sql:$HOME/.pki/nssdb -D -n "
            f"{NSS_NICKNAME}) and trust this one:")
    _trust_hints(ca, console)
    return 0


def _describe_ca(ca: DevCA, console: Console) -> None:
    assert ca.ca_path is not None and ca.key_path is not None
    _row(console, "certificate", str(ca.ca_path))
    _row(console, "key", f"{ca.key_path} (mode 0600: keep it private)")
    _row(console, "subject", ca.certificate.subject.rfc4514_string())
    _row(console, "SHA-256", fingerprint(ca.certificate))
    _row(console, "valid", _validity(ca.certificate))


def _trust_hints(ca: DevCA, console: Console) -> None:
    path = ca.ca_path
    assert path is not None
    console.print()
    _heading(console, "Trust it (only where you develop):")
    _row(console, "curl", f"curl --cacert {_q(path)} https://localhost:8443/")
    _row(console, "Python ssl", f"ssl.create_default_context(cafile={str(path)!r})")
    _row(console, "tlsmith API",
         f"TrustStore.from_pem_file({str(path)!r})  # tlsmith.x509.verify")
    _row(console, "tlsmith", f"tlsmith connect localhost:8443 --cafile {_q(path)}")
    _row(console, "OpenSSL", f"openssl s_client -connect localhost:8443 -CAfile {_q(path)}")
    _row(console, "Chromium", f'certutil -d sql:$HOME/.pki/nssdb -A -t "C,," '
                              f"-n {NSS_NICKNAME} -i {_q(path)}")
    console.print()
    _say(console, "Next: tlsmith ca issue localhost 127.0.0.1")


# --- issue -------------------------------------------------------------------------------


def run_issue(*, names: Sequence[str], ips: Sequence[str], client: bool, key_type: str,
              days: int, out: str | None, console: Console) -> int:
    if not names and not ips:
        raise click.UsageError("name at least one host name or IP address, e.g. "
                               "`tlsmith ca issue localhost 127.0.0.1`")
    if key_type.lower() not in KEY_TYPES:
        raise click.BadParameter(
            f"unknown key type {key_type!r}; choose one of {', '.join(KEY_TYPES)}",
            param_hint="'--key-type'")
    if not 1 <= days <= MAX_DAYS:
        raise click.BadParameter(
            f"{days} is out of range: a certificate is valid for 1 to {MAX_DAYS} days "
            f"({MAX_DAYS} is the longest that Apple platforms accept)",
            param_hint="'--days'")
    checked: list[str] = []
    for name in [*(check_name(n) for n in names), *(check_name(a, ip_only=True)
                                                   for a in ips)]:
        if name not in checked:
            checked.append(name)

    directory = default_data_dir()
    created = _load_ca(directory) is None
    ca = DevCA.load_or_create(directory)
    now = datetime.now(UTC)
    ca_end = ca.certificate.not_valid_after_utc
    if now + timedelta(days=days) > ca_end:
        left = (ca_end - now).days
        raise click.BadParameter(
            f"the development CA expires on {_when(ca_end)}, before {days} days from now; "
            f"use --days {left} or less, or make a new CA with `tlsmith ca init --force`",
            param_hint="'--days'")
    try:
        issued = ca.issue(checked, KEY_TYPES[key_type.lower()], days=days, client=client,
                          now=now)
    except UsageError as exc:
        raise click.UsageError(str(exc)) from exc
    target = Path(out).expanduser() if out else directory / ISSUED_DIR
    if not out:
        target.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        issued = issued.write_bundle(target, file_stem(checked[0]))
    except OSError as exc:
        raise click.ClickException(f"cannot write into {target}: {exc.strerror}") from exc
    assert issued.cert_path is not None and issued.key_path is not None
    assert ca.ca_path is not None

    cert = issued.certificate
    if created:
        _say(console, f"Created the development CA at {ca.ca_path} (`tlsmith ca init` "
                      "shows how to trust it)")
    kind = "client" if client else "server"
    _heading(console, f"Issued a {kind} certificate for {', '.join(checked)}")
    _row(console, "certificate", f"{issued.cert_path} (leaf + CA)")
    _row(console, "key", f"{issued.key_path} (mode 0600)")
    _row(console, "names", ", ".join(_sans(cert)))
    _row(console, "usage", "clientAuth (TLS client)" if client else "serverAuth (TLS server)")
    _row(console, "key type", _key_description(cert))
    _row(console, "valid", _validity(cert))
    _row(console, "SHA-256", fingerprint(cert))
    _row(console, "issuer", f"{ca.certificate.subject.rfc4514_string()} ({ca.ca_path})")
    console.print()
    pair = f"--cert {_q(issued.cert_path)} --key {_q(issued.key_path)}"
    if client:
        _say(console, "Connect with it (the server must trust the CA above):")
        _say(console, f"  tlsmith connect HOST:PORT {pair}")
        _say(console, "A tlsmith server that requires it:")
        _say(console, f"  tlsmith serve --client-ca {_q(ca.ca_path)} --require-client-cert")
    else:
        _say(console, "Serve with it (clients trust it via the CA above):")
        _say(console, f"  tlsmith serve {pair}")
    return 0


# --- show --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Listed:
    path: Path
    certificate: x509.Certificate | None
    problem: str = ""


def _issued_files(directory: Path) -> list[_Listed]:
    if not directory.is_dir():
        return []
    listed = []
    for path in sorted(directory.glob("*.pem")):
        if path.name.endswith("-key.pem"):
            continue
        try:
            listed.append(_Listed(path, x509.load_pem_x509_certificate(path.read_bytes())))
        except (OSError, ValueError) as exc:
            listed.append(_Listed(path, None, f"unreadable: {exc}"))
    return listed


def run_show(*, console: Console, err_console: Console) -> int:
    directory = default_data_dir()
    ca = _load_ca(directory)
    if ca is None:
        _say(err_console,
             f"No development CA in {directory} yet; `tlsmith ca init` makes one.")
        return 1
    _heading(console, "Development CA")
    _describe_ca(ca, console)
    now = datetime.now(UTC)
    issued_dir = directory / ISSUED_DIR
    listed = _issued_files(issued_dir)
    console.print()
    if not listed:
        _say(console, f"No certificates issued into {issued_dir} yet: tlsmith ca issue NAME…")
        return 0
    _heading(console, f"Issued into {issued_dir}:")
    width = max(len(item.path.name) for item in listed)
    for item in listed:
        cert = item.certificate
        if cert is None:
            _say(console, f"  {item.path.name:<{width}}  {item.problem}")
            continue
        end = cert.not_valid_after_utc
        if end <= now:
            expiry = f"EXPIRED {_when(end)}"
        else:
            expiry = f"expires {_when(end)} ({round((end - now) / timedelta(days=1))} days left)"
        note = "" if ca.issued(cert) else "  (not issued by this CA: issue it again)"
        _say(console, f"  {item.path.name:<{width}}  {_usage(cert):<6}  "
                      f"{', '.join(_sans(cert)) or '-'}  {expiry}{note}")
    return 0
