"""A normal install in a fresh virtualenv: twistd plugin, flasfka-serve, the .tac, the README."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet import threads

import flasfka
from tests.support.servers import free_port, subprocess_env, unique, wait_for_port

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def venv_bin(tmp_path_factory) -> Path:
    """bin/ of a fresh virtualenv with flasfka[embedded] installed from this tree (no -e)."""
    venv = tmp_path_factory.mktemp("installed") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    pip = [str(venv / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run(
        [*pip, f"{ROOT}[embedded]"],
        check=True,
        timeout=600,
        cwd=str(tmp_path_factory.mktemp("cwd")),
    )
    return venv / "bin"


def installed_env(venv_bin: Path, **extra: str) -> dict[str, str]:
    """An environment where the installed copy is the only flasfka (not this source tree)."""
    env = subprocess_env(**extra)
    env.pop("PYTHONPATH", None)
    env["PATH"] = f"{venv_bin}{os.pathsep}{env['PATH']}"
    return env


def http(method: str, url: str, body: bytes | None = None) -> tuple[int, bytes]:
    """One blocking HTTP request (worker thread only)."""
    request = urllib.request.Request(url, data=body, method=method)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def round_trip(
    command: list[str], port: int, env: dict[str, str], cwd: Path, exit_codes=(0,)
) -> str:
    """Start command, POST then GET through it, SIGTERM it; return its output (thread only)."""
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=str(cwd)
    )
    try:
        wait_for_port(port, timeout=30)
        topic, base = unique(), f"http://127.0.0.1:{port}"
        status, body = http("POST", f"{base}/{topic}/", b'{"messages": ["round", "trip"]}')
        assert status == 204, body
        status, body = http("GET", f"{base}/{topic}/")
        assert status == 200, body
        assert json.loads(body) == {"group": "flasfka", "messages": ["round", "trip"]}
    finally:
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=60)[0].decode()
    assert process.returncode in exit_codes, output
    return output


#: twistd ends itself with the signal that stopped it (systemd counts SIGTERM as a clean exit).
TWISTD_EXIT_CODES = (0, -signal.SIGTERM)


async def run_installed(venv_bin: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """Run an installed command to completion in a worker thread."""
    return await threads.deferToThread(
        subprocess.run,
        [str(venv_bin / args[0]), *args[1:]],
        capture_output=True,
        text=True,
        env=installed_env(venv_bin),
        cwd=str(cwd),
        timeout=60,
    )


def assert_quiet_startup(output: str) -> None:
    """Up to the first answered request, the log holds no warning and no error."""
    startup = output.split("flasfka.access", 1)[0]
    noisy = [line for line in startup.splitlines() if "#warn]" in line or "#error]" in line]
    assert noisy == [], noisy
    assert "Connection refused" not in startup
    assert "delivery: a POST answers 2xx once the broker acknowledged" in startup


@pytest_twisted.ensureDeferred
async def test_twistd_lists_the_plugin(venv_bin, tmp_path):
    result = await run_installed(venv_bin, tmp_path, "twistd", "--help")
    assert result.returncode == 0, result.stderr
    assert re.search(r"^\s+flasfka\s+HTTP gateway for Kafka", result.stdout, re.M), result.stdout


@pytest_twisted.ensureDeferred
async def test_twistd_plugin_serves_on_the_embedded_broker(venv_bin, tmp_path):
    port = free_port()
    command = [str(venv_bin / "twistd"), "--nodaemon", "--pidfile=", "flasfka"]
    command += ["--embedded-broker", "--port", str(port)]
    output = await threads.deferToThread(
        round_trip, command, port, installed_env(venv_bin), tmp_path, TWISTD_EXIT_CODES
    )
    assert "embedded Tansu broker listening on 127.0.0.1:" in output
    assert_quiet_startup(output)


@pytest_twisted.ensureDeferred
async def test_flasfka_serve_serves_on_the_embedded_broker(venv_bin, tmp_path):
    port = free_port()
    command = [str(venv_bin / "flasfka-serve"), "-e", "-p", str(port)]
    output = await threads.deferToThread(
        round_trip, command, port, installed_env(venv_bin), tmp_path
    )
    assert_quiet_startup(output)  # what `make run` shows a newcomer


@pytest_twisted.ensureDeferred
async def test_installed_flasfka_serve_runs_two_workers(venv_bin, tmp_path):
    port = free_port()
    command = [str(venv_bin / "flasfka-serve"), "-e", "-p", str(port), "--workers", "2"]
    output = await threads.deferToThread(
        round_trip, command, port, installed_env(venv_bin), tmp_path
    )
    for worker in (1, 2):
        assert f"[worker {worker} flasfka#info] flasfka listening on" in output, output
    assert "all workers stopped" in output


@pytest_twisted.ensureDeferred
async def test_flasfka_serve_help(venv_bin, tmp_path):
    result = await run_installed(venv_bin, tmp_path, "flasfka-serve", "-h")
    assert result.returncode == 0
    for option in ("--port", "--config", "--embedded-broker", "--workers"):
        assert option in result.stdout
    version = await run_installed(venv_bin, tmp_path, "flasfka-serve", "--version")
    assert version.returncode == 0
    assert version.stdout.startswith(f"flasfka {flasfka.__version__} (Twisted "), version.stdout


@pytest_twisted.ensureDeferred
async def test_tac_serves_on_the_embedded_broker(venv_bin, tmp_path):
    port = free_port()
    tac = tmp_path / "flasfka.tac"
    tac.write_text((ROOT / "flasfka.tac").read_text())
    command = [str(venv_bin / "twistd"), "--pidfile=", "-ny", str(tac)]
    env = installed_env(venv_bin, FLASFKA_OPTIONS=f"--embedded-broker -p {port}")
    await threads.deferToThread(round_trip, command, port, env, tmp_path, TWISTD_EXIT_CODES)


@pytest_twisted.ensureDeferred
async def test_twistd_and_the_tac_stop_on_a_bad_config_with_one_line(venv_bin, tmp_path):
    config = tmp_path / "bad.py"
    config.write_text("CONSUMR_LIMIT = 5\n")
    tac = tmp_path / "flasfka.tac"
    tac.write_text((ROOT / "flasfka.tac").read_text())
    runs = [
        ([str(venv_bin / "twistd"), "-n", "--pidfile=", "flasfka", "--config", str(config)], {}),
        (
            [str(venv_bin / "twistd"), "-n", "--pidfile=", "-y", str(tac)],
            {"FLASFKA_CONFIG": str(config)},
        ),
        (
            [str(venv_bin / "twistd"), "-n", "--pidfile=", "-y", str(tac)],
            {"FLASFKA_OPTIONS": "-w x"},
        ),
    ]
    for command, extra in runs:
        result = await threads.deferToThread(
            subprocess.run,
            command,
            capture_output=True,
            text=True,
            env=installed_env(venv_bin, **extra),
            cwd=str(tmp_path),
            timeout=60,
        )
        lines = result.stderr.strip().splitlines()
        assert result.returncode != 0 and len(lines) == 1, (command, result.stderr)
        assert "unknown key CONSUMR_LIMIT" in lines[0] or "--workers must be" in lines[0], lines


def readme_curl_commands() -> list[str]:
    """The curl command lines of README.rst's usage section, in order."""
    text = (ROOT / "README.rst").read_text()
    usage = text.split("\nUsage\n=====\n", 1)[1].split("\n=", 1)[0]
    return [line.strip() for line in usage.splitlines() if line.strip().startswith("curl ")]


def run_readme(port: int, env: dict[str, str], cwd: Path) -> list[tuple[str, str]]:
    """Run the README's curl lines against flasfka-serve -e on port (thread only)."""
    process = subprocess.Popen(
        ["flasfka-serve", "--embedded-broker", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        cwd=str(cwd),
    )
    outputs = []
    try:
        wait_for_port(port, timeout=30)
        for line in readme_curl_commands():
            command = line.replace("127.0.0.1:5000", f"127.0.0.1:{port}")
            result = subprocess.run(
                command + " --fail-with-body --silent --show-error",
                shell=True,
                capture_output=True,
                text=True,
                timeout=60,
                env=env,
            )
            assert result.returncode == 0, (line, result.stdout, result.stderr)
            outputs.append((line, result.stdout))
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(60)
    return outputs


@pytest_twisted.ensureDeferred
async def test_readme_curl_examples_work_as_written(venv_bin, tmp_path):
    commands = readme_curl_commands()
    assert sum("-X POST" in c for c in commands) >= 2 and len(commands) >= 5
    outputs = await threads.deferToThread(
        run_readme, free_port(), installed_env(venv_bin), tmp_path
    )
    fetched: dict[str, list[str]] = {}
    for line, output in outputs:
        if "-X POST" in line:
            assert output == ""
        else:
            body = json.loads(output)
            fetched.setdefault(body["group"], []).extend(body["messages"])
    assert sorted(fetched["flasfka"]) == ["msg1", "msg2", "msg3"]
    assert sorted(fetched["my-group"]) == ["msg1", "msg2", "msg3"]
