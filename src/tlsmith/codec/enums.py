"""Open enums for the IANA registries TLS uses.

Every enum here accepts values it has no name for: an unknown code point (or a
GREASE value, RFC 8701) parses into a pseudo-member that keeps its number, so it
survives parse -> serialize unchanged.
"""

from __future__ import annotations

import enum
from typing import Any, TypeVar


def is_grease(value: int) -> bool:
    """RFC 8701 §2: 0x0A0A, 0x1A1A, ... 0xFAFA (both bytes equal, low nibble 0xA)."""
    return (value & 0x0F0F) == 0x0A0A and (value >> 8) == (value & 0xFF)


class OpenEnum(enum.IntEnum):
    """An IntEnum that takes unknown values instead of raising ValueError."""

    @classmethod
    def _missing_(cls, value: object) -> Any:
        if not isinstance(value, int):
            return None
        member = int.__new__(cls, value)
        label = "GREASE" if cls._grease_applies() and is_grease(value) else "UNKNOWN"
        member._name_ = f"{label}_{value:#06x}"
        member._value_ = value
        return member

    @classmethod
    def _grease_applies(cls) -> bool:
        return True

    @property
    def known(self) -> bool:
        return self._name_ in type(self).__members__

    def __str__(self) -> str:
        return self._name_ or ""

    def __repr__(self) -> str:
        return f"<{type(self).__name__}.{self._name_}: {int(self):#x}>"

    @property
    def rfc_name(self) -> str:
        """The name as the RFC/IANA registry writes it (e.g. ``TLS_AES_128_GCM_SHA256``)."""
        return self._name_ or ""


_OE = TypeVar("_OE", bound=OpenEnum)


def member(enum_cls: type[_OE], value: int) -> _OE:
    """``enum_cls(value)`` without the Enum call (a few dozen Python opcodes) when
    ``value`` already is a member, or the number of a known one (the hot path)."""
    if type(value) is enum_cls:
        return value
    found = enum_cls._value2member_map_.get(value)
    return found if found is not None else enum_cls(value)  # type: ignore[return-value]


class ContentType(OpenEnum):
    INVALID = 0
    CHANGE_CIPHER_SPEC = 20
    ALERT = 21
    HANDSHAKE = 22
    APPLICATION_DATA = 23
    HEARTBEAT = 24


class ProtocolVersion(OpenEnum):
    SSL30 = 0x0300
    TLS10 = 0x0301
    TLS11 = 0x0302
    TLS12 = 0x0303
    TLS13 = 0x0304

    @property
    def label(self) -> str:
        return {0x0300: "SSLv3", 0x0301: "TLSv1", 0x0302: "TLSv1.1", 0x0303: "TLSv1.2",
                0x0304: "TLSv1.3"}.get(int(self), str(self))


class HandshakeType(OpenEnum):
    HELLO_REQUEST = 0
    CLIENT_HELLO = 1
    SERVER_HELLO = 2
    HELLO_VERIFY_REQUEST = 3
    NEW_SESSION_TICKET = 4
    END_OF_EARLY_DATA = 5
    HELLO_RETRY_REQUEST = 6  # reserved: TLS 1.3 sends HRR as a ServerHello
    ENCRYPTED_EXTENSIONS = 8
    CERTIFICATE = 11
    SERVER_KEY_EXCHANGE = 12
    CERTIFICATE_REQUEST = 13
    SERVER_HELLO_DONE = 14
    CERTIFICATE_VERIFY = 15
    CLIENT_KEY_EXCHANGE = 16
    FINISHED = 20
    CERTIFICATE_URL = 21
    CERTIFICATE_STATUS = 22
    SUPPLEMENTAL_DATA = 23
    KEY_UPDATE = 24
    COMPRESSED_CERTIFICATE = 25
    NEXT_PROTOCOL = 67  # draft-agl-tls-nextprotoneg §3 (NPN)
    MESSAGE_HASH = 254


class ExtensionType(OpenEnum):
    SERVER_NAME = 0
    MAX_FRAGMENT_LENGTH = 1
    STATUS_REQUEST = 5
    SUPPORTED_GROUPS = 10
    EC_POINT_FORMATS = 11
    SIGNATURE_ALGORITHMS = 13
    USE_SRTP = 14
    HEARTBEAT = 15
    APPLICATION_LAYER_PROTOCOL_NEGOTIATION = 16
    SIGNED_CERTIFICATE_TIMESTAMP = 18
    CLIENT_CERTIFICATE_TYPE = 19
    SERVER_CERTIFICATE_TYPE = 20
    PADDING = 21
    ENCRYPT_THEN_MAC = 22
    EXTENDED_MASTER_SECRET = 23
    COMPRESS_CERTIFICATE = 27
    RECORD_SIZE_LIMIT = 28
    SESSION_TICKET = 35
    PRE_SHARED_KEY = 41
    EARLY_DATA = 42
    SUPPORTED_VERSIONS = 43
    COOKIE = 44
    PSK_KEY_EXCHANGE_MODES = 45
    CERTIFICATE_AUTHORITIES = 47
    OID_FILTERS = 48
    POST_HANDSHAKE_AUTH = 49
    SIGNATURE_ALGORITHMS_CERT = 50
    KEY_SHARE = 51
    NEXT_PROTOCOL_NEGOTIATION = 13172  # draft-agl-tls-nextprotoneg §3
    APPLICATION_SETTINGS = 17513  # draft-vvv-tls-alps, the old codepoint
    APPLICATION_SETTINGS_NEW = 17613  # draft-vvv-tls-alps, the new codepoint (0x44cd)
    ENCRYPTED_CLIENT_HELLO = 0xFE0D
    RENEGOTIATION_INFO = 0xFF01


class CipherSuite(OpenEnum):
    TLS_NULL_WITH_NULL_NULL = 0x0000
    TLS_RSA_WITH_AES_128_CBC_SHA = 0x002F
    TLS_DHE_RSA_WITH_AES_128_CBC_SHA = 0x0033
    TLS_RSA_WITH_AES_256_CBC_SHA = 0x0035
    TLS_DHE_RSA_WITH_AES_256_CBC_SHA = 0x0039
    TLS_PSK_WITH_AES_128_CBC_SHA = 0x008C  # RFC 4279
    TLS_PSK_WITH_AES_256_CBC_SHA = 0x008D
    TLS_RSA_WITH_AES_128_CBC_SHA256 = 0x003C
    TLS_RSA_WITH_AES_256_CBC_SHA256 = 0x003D
    TLS_DHE_RSA_WITH_AES_128_CBC_SHA256 = 0x0067
    TLS_DHE_RSA_WITH_AES_256_CBC_SHA256 = 0x006B
    TLS_RSA_WITH_AES_128_GCM_SHA256 = 0x009C
    TLS_RSA_WITH_AES_256_GCM_SHA384 = 0x009D
    TLS_DHE_RSA_WITH_AES_128_GCM_SHA256 = 0x009E
    TLS_DHE_RSA_WITH_AES_256_GCM_SHA384 = 0x009F
    TLS_EMPTY_RENEGOTIATION_INFO_SCSV = 0x00FF
    TLS_AES_128_GCM_SHA256 = 0x1301
    TLS_AES_256_GCM_SHA384 = 0x1302
    TLS_CHACHA20_POLY1305_SHA256 = 0x1303
    TLS_AES_128_CCM_SHA256 = 0x1304
    TLS_AES_128_CCM_8_SHA256 = 0x1305
    TLS_FALLBACK_SCSV = 0x5600
    TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA = 0xC009
    TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA = 0xC00A
    TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA = 0xC013
    TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA = 0xC014
    TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256 = 0xC023
    TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384 = 0xC024
    TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256 = 0xC027
    TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384 = 0xC028
    TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 = 0xC02B
    TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384 = 0xC02C
    TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 = 0xC02F
    TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 = 0xC030
    TLS_ECDHE_PSK_WITH_AES_128_CBC_SHA = 0xC035  # RFC 5489
    TLS_ECDHE_PSK_WITH_AES_256_CBC_SHA = 0xC036
    TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256 = 0xCCA8
    TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256 = 0xCCA9
    TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256 = 0xCCAA
    TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256 = 0xCCAC  # RFC 7905


class NamedGroup(OpenEnum):
    SECP256R1 = 0x0017
    SECP384R1 = 0x0018
    SECP521R1 = 0x0019
    X25519 = 0x001D
    X448 = 0x001E
    FFDHE2048 = 0x0100
    FFDHE3072 = 0x0101
    FFDHE4096 = 0x0102
    FFDHE6144 = 0x0103
    FFDHE8192 = 0x0104
    # draft-ietf-tls-mlkem: pure ML-KEM (FIPS 203).
    MLKEM512 = 0x0200
    MLKEM768 = 0x0201
    MLKEM1024 = 0x0202
    # draft-ietf-tls-ecdhe-mlkem: hybrids.
    X25519MLKEM768 = 0x11EC
    SECP256R1MLKEM768 = 0x11EB
    SECP384R1MLKEM1024 = 0x11ED

    @property
    def openssl_name(self) -> str:
        return {0x17: "P-256", 0x18: "P-384", 0x19: "P-521", 0x1D: "X25519",
                0x1E: "X448"}.get(int(self), self.name.lower())


class SignatureScheme(OpenEnum):
    RSA_PKCS1_SHA1 = 0x0201
    ECDSA_SHA1 = 0x0203
    RSA_PKCS1_SHA256 = 0x0401
    RSA_PKCS1_SHA384 = 0x0501
    RSA_PKCS1_SHA512 = 0x0601
    ECDSA_SECP256R1_SHA256 = 0x0403
    ECDSA_SECP384R1_SHA384 = 0x0503
    ECDSA_SECP521R1_SHA512 = 0x0603
    RSA_PSS_RSAE_SHA256 = 0x0804
    RSA_PSS_RSAE_SHA384 = 0x0805
    RSA_PSS_RSAE_SHA512 = 0x0806
    ED25519 = 0x0807
    ED448 = 0x0808
    RSA_PSS_PSS_SHA256 = 0x0809
    RSA_PSS_PSS_SHA384 = 0x080A
    RSA_PSS_PSS_SHA512 = 0x080B
    # RFC 9963: PKCS#1 v1.5 for TLS 1.3 client CertificateVerify only.
    RSA_PKCS1_SHA256_LEGACY = 0x0420
    RSA_PKCS1_SHA384_LEGACY = 0x0520
    RSA_PKCS1_SHA512_LEGACY = 0x0620
    # draft-ietf-tls-mldsa: ML-DSA (FIPS 204), TLS 1.3 only.
    MLDSA44 = 0x0904
    MLDSA65 = 0x0905
    MLDSA87 = 0x0906


class AlertLevel(OpenEnum):
    WARNING = 1
    FATAL = 2

    @classmethod
    def _grease_applies(cls) -> bool:
        return False


class AlertDescription(OpenEnum):
    CLOSE_NOTIFY = 0
    UNEXPECTED_MESSAGE = 10
    BAD_RECORD_MAC = 20
    DECRYPTION_FAILED = 21
    RECORD_OVERFLOW = 22
    DECOMPRESSION_FAILURE = 30
    HANDSHAKE_FAILURE = 40
    NO_CERTIFICATE = 41
    BAD_CERTIFICATE = 42
    UNSUPPORTED_CERTIFICATE = 43
    CERTIFICATE_REVOKED = 44
    CERTIFICATE_EXPIRED = 45
    CERTIFICATE_UNKNOWN = 46
    ILLEGAL_PARAMETER = 47
    UNKNOWN_CA = 48
    ACCESS_DENIED = 49
    DECODE_ERROR = 50
    DECRYPT_ERROR = 51
    EXPORT_RESTRICTION = 60
    PROTOCOL_VERSION = 70
    INSUFFICIENT_SECURITY = 71
    INTERNAL_ERROR = 80
    INAPPROPRIATE_FALLBACK = 86
    USER_CANCELED = 90
    NO_RENEGOTIATION = 100
    MISSING_EXTENSION = 109
    UNSUPPORTED_EXTENSION = 110
    CERTIFICATE_UNOBTAINABLE = 111
    UNRECOGNIZED_NAME = 112
    BAD_CERTIFICATE_STATUS_RESPONSE = 113
    BAD_CERTIFICATE_HASH_VALUE = 114
    UNKNOWN_PSK_IDENTITY = 115
    CERTIFICATE_REQUIRED = 116
    NO_APPLICATION_PROTOCOL = 120

    @classmethod
    def _grease_applies(cls) -> bool:
        return False

    @property
    def rfc_name(self) -> str:
        return (self._name_ or "").lower()


class PskKeyExchangeMode(OpenEnum):
    PSK_KE = 0
    PSK_DHE_KE = 1


class KeyUpdateRequest(OpenEnum):
    UPDATE_NOT_REQUESTED = 0
    UPDATE_REQUESTED = 1


class NameType(OpenEnum):
    HOST_NAME = 0


class CertificateStatusType(OpenEnum):
    OCSP = 1
    OCSP_MULTI = 2


class ECPointFormat(OpenEnum):
    UNCOMPRESSED = 0
    ANSIX962_COMPRESSED_PRIME = 1
    ANSIX962_COMPRESSED_CHAR2 = 2


class ECCurveType(OpenEnum):
    EXPLICIT_PRIME = 1
    EXPLICIT_CHAR2 = 2
    NAMED_CURVE = 3


class CompressionMethod(OpenEnum):
    NULL = 0
    DEFLATE = 1


class ClientCertificateType(OpenEnum):
    """TLS 1.2 CertificateRequest.certificate_types (RFC 5246 §7.4.4, RFC 8422 §5.5)."""

    RSA_SIGN = 1
    DSS_SIGN = 2
    RSA_FIXED_DH = 3
    DSS_FIXED_DH = 4
    ECDSA_SIGN = 64
    RSA_FIXED_ECDH = 65
    ECDSA_FIXED_ECDH = 66


class CertificateType(OpenEnum):
    """RFC 7250 certificate types (used in TLS 1.3 Certificate entries' context)."""

    X509 = 0
    RAW_PUBLIC_KEY = 2
