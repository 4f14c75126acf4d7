"""Config loading: defaults, the file FLASFKA_CONFIG names, and one-line errors."""

from __future__ import annotations

import subprocess
import sys

import pytest

from flasfka.app.config import FIXED_PRODUCER_SETTINGS, Config, ConfigError, load_config
from flasfka.kafka.settings import ACKNOWLEDGEMENT_SETTINGS, client_settings
from tests.support.servers import subprocess_env


def write(tmp_path, text: str) -> str:
    path = tmp_path / "flasfka.conf.py"
    path.write_text(text)
    return str(path)


def test_defaults_are_the_seeds(monkeypatch):
    monkeypatch.delenv("FLASFKA_CONFIG", raising=False)
    config = load_config(None)
    assert config.HOSTS == ["localhost:9092"]
    assert config.CONSUMER_TIMEOUT == 0.1
    assert config.CONSUMER_LIMIT == 100
    assert config.DEFAULT_GROUP == "flasfka"


def test_file_named_by_the_environment(tmp_path, monkeypatch):
    path = write(
        tmp_path,
        'HOSTS = ["k1:9092", "k2:9092"]\nCONSUMER_TIMEOUT = 1\n'
        'KAFKA_CONFIG = {"security.protocol": "SASL_SSL"}\nimport os\n_private = 3\n',
    )
    monkeypatch.setenv("FLASFKA_CONFIG", path)
    config = load_config(None)
    assert config.HOSTS == ["k1:9092", "k2:9092"]
    assert config.CONSUMER_TIMEOUT == 1.0
    assert config.KAFKA_CONFIG == {"security.protocol": "SASL_SSL"}
    assert config.CONSUMER_LIMIT == Config().CONSUMER_LIMIT


def test_explicit_path_wins_over_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("FLASFKA_CONFIG", str(tmp_path / "absent.py"))
    assert load_config(write(tmp_path, "CONSUMER_LIMIT = 5\n")).CONSUMER_LIMIT == 5


@pytest.mark.parametrize(
    "text, says",
    [
        ("HOSTS = [\n", "syntax error at line 1"),
        ("CONSUMER_LIMITT = 5\n", "unknown key CONSUMER_LIMITT"),
        ('CONSUMER_LIMIT = "5"\n', "CONSUMER_LIMIT must be of type int, not str"),
        ("CONSUMER_TIMEOUT = True\n", "CONSUMER_TIMEOUT must be of type float, not bool"),
        ('HOSTS = "localhost:9092"\n', "HOSTS must be of type list[str], not str"),
        ("KAFKA_CONFIG = []\n", "KAFKA_CONFIG must be of type dict[str, Any], not list"),
        ("CONSUMER_LIMIT = 0\n", "CONSUMER_LIMIT must be > 0"),
        ("CONSUMER_LIMIT = 20000\n", "CONSUMER_LIMIT must be <= CONSUMER_MAX_LIMIT"),
        ('LOG_FORMAT = "xml"\n', "LOG_FORMAT must be 'text' or 'json'"),
        ('PRODUCER_CONFIG = {"acks": 1}\n', "PRODUCER_CONFIG cannot set acks"),
        (
            'KAFKA_CONFIG = {"enable.idempotence": False, "message.timeout.ms": 1}\n',
            "KAFKA_CONFIG cannot set enable.idempotence, message.timeout.ms",
        ),
        ("1 / 0\n", "ZeroDivisionError"),
        ('DEFAULT_GROUP = ""\n', "DEFAULT_GROUP: invalid group name: it must not be empty"),
        ('CONSUMER_MAX_TIMEOUT = float("nan")\n', "CONSUMER_MAX_TIMEOUT must be a finite number"),
        ('PRODUCE_TIMEOUT = float("inf")\n', "PRODUCE_TIMEOUT must be a finite number"),
        ("X = 1\x00\n", "syntax error: source code string cannot contain null bytes"),
    ],
)
def test_bad_files_name_the_file_and_key(tmp_path, text, says):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert message.startswith(path + ": ")
    assert says in message
    assert "\n" not in message


def test_a_file_is_decoded_as_python_source(tmp_path):
    """Bytes that are not UTF-8 are a syntax error naming the file; a coding line is honoured."""
    path = tmp_path / "binary.py"
    path.write_bytes(b"\xff\xfeX = 1\n")
    with pytest.raises(ConfigError, match=f"^{path}: syntax error at line 1: .*utf-8"):
        load_config(str(path))
    path = tmp_path / "latin.py"
    path.write_bytes(b'# -*- coding: latin-1 -*-\nDEFAULT_GROUP = "caf\xe9"\n')
    assert load_config(str(path)).DEFAULT_GROUP == "caf\u00e9"


def test_missing_file(tmp_path):
    path = str(tmp_path / "nope.py")
    with pytest.raises(ConfigError, match=f"^{path}: cannot read config file"):
        load_config(path)


@pytest.mark.parametrize(
    "text, says",
    [
        ("CONSUMER_LIMITT = 5\n", "unknown key CONSUMER_LIMITT"),
        ('KAFKA_CONFIG = {"no.such.setting": 1}\n', "no.such.setting"),
    ],
)
def test_bad_config_stops_startup_with_one_clear_line(tmp_path, text, says):
    path = write(tmp_path, text)
    result = subprocess.run(
        [sys.executable, "-m", "flasfka.app.cli", "--config", path, "-p", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        env=subprocess_env(),
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert path in lines[0] or "config error" in lines[0]
    assert says in lines[0]


def readme_literal_blocks() -> list[str]:
    """The indented literal blocks of README.rst (after a line ending in '::')."""
    from pathlib import Path

    lines = (Path(__file__).resolve().parents[2] / "README.rst").read_text().splitlines()
    blocks, current, inside = [], [], False
    for line in [*lines, "end"]:
        if inside and (not line.strip() or line.startswith("    ")):
            current.append(line[4:])
            continue
        if current:
            blocks.append("\n".join(current).strip() + "\n")
            current = []
        inside = line.rstrip().endswith("::")
    return blocks


def test_every_config_example_in_the_readme_loads(tmp_path, monkeypatch):
    import re

    python = re.compile(r"(# |import |[A-Z_]+ = )")
    examples = [b for b in readme_literal_blocks() if python.match(b) and "HOSTS = " in b]
    assert len(examples) >= 3
    monkeypatch.setenv("KAFKA_API_KEY", "key")
    monkeypatch.setenv("KAFKA_API_SECRET", "secret")
    for example in examples:
        config = load_config(write(tmp_path, example))
        assert config.HOSTS


def test_the_settings_a_post_relies_on_cannot_be_configured():
    assert set(ACKNOWLEDGEMENT_SETTINGS) <= FIXED_PRODUCER_SETTINGS
    producer = client_settings(Config())[0]
    assert {key: producer[key] for key in ACKNOWLEDGEMENT_SETTINGS} == ACKNOWLEDGEMENT_SETTINGS
