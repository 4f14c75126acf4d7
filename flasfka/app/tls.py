"""TLS listeners that require a client certificate signed by a configured CA.

Twisted's ``ssl:`` endpoint string has no option to verify clients, so the endpoint it parses
is rebuilt with the same key, certificate and chain and ``verify=True`` against the CA file:
the handshake then fails for a client without a valid certificate, and the certificate's
subject CN is the request's principal (flasfka.http.auth).
"""

from __future__ import annotations

import re

from twisted.internet import ssl
from twisted.internet.endpoints import SSL4ServerEndpoint
from twisted.internet.interfaces import IStreamServerEndpoint

_PEM = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)


def load_cas(path: str) -> list[ssl.Certificate]:
    """Every certificate in the PEM file at path (ValueError if none)."""
    try:
        with open(path, "rb") as f:
            found = _PEM.findall(f.read())
    except OSError as e:
        raise ValueError(f"cannot read {path!r}: {e.strerror}") from None
    if not found:
        raise ValueError(f"{path!r} holds no PEM certificate")
    return [ssl.Certificate.loadPEM(pem) for pem in found]


def require_client_certificates(
    endpoint: IStreamServerEndpoint, ca_path: str
) -> SSL4ServerEndpoint:
    """endpoint (an ssl: listener) requiring client certificates signed by ca_path's CAs."""
    if not isinstance(endpoint, SSL4ServerEndpoint):
        raise ValueError("client certificates need an ssl: listener")
    options = endpoint._sslContextFactory  # what the ssl: string set up
    cas = load_cas(ca_path)
    verifying = ssl.CertificateOptions(
        privateKey=options.privateKey,
        certificate=options.certificate,
        extraCertChain=options.extraCertChain,
        dhParameters=options.dhParameters,
        verify=True,
        caCerts=[ca.original for ca in cas],
        requireCertificate=True,
    )
    return SSL4ServerEndpoint(
        endpoint._reactor,
        endpoint._port,
        verifying,
        backlog=endpoint._backlog,
        interface=endpoint._interface,
    )
