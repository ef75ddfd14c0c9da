"""`rata serve` as an operator runs it: a real process, HTTPS with a certificate, a clean stop on SIGTERM."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import os
import signal
import socket
import ssl
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from typer.testing import CliRunner

from runner.cli import app
from tests.api.helpers import FAST_ARGON2, JWT_SECRET, PASSWORDS, ROLES

RATA = [sys.executable, "-c", "from runner.cli import main; main()"]


def _certificate(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["serve", "--mode", "live"], "live mode trades real money"),
        (["serve", "--mode", "sim"], "--mode must be"),
        (["serve", "--certfile", "cert.pem"], "give both --certfile and --keyfile"),
        (["serve", "--certfile", "nope.pem", "--keyfile", "nope.key"], "no such file"),
    ],
)
def test_serve_refuses_bad_options_with_one_line(args: list[str], needle: str) -> None:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert needle in result.output


async def test_rata_serve_speaks_https_and_stops_cleanly_on_sigterm(database, tmp_path: Path) -> None:
    from framework.security import Passwords, UserStore

    store = UserStore(database.pool, passwords=Passwords(FAST_ARGON2))
    await store.add("bob", PASSWORDS["bob"], ROLES["bob"])
    cert, key = _certificate(tmp_path)
    config = tmp_path / "rata.toml"
    config.write_text(
        f'[runner]\nmode = "replay"\npaper_dir = "{tmp_path / "paper"}"\n'
        '[feed]\nkind = "replay"\ndataset = "GOOG"\nspeed = 1728000\n'
    )
    port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database.dsn,
        "RATA_DATA_DIR": str(tmp_path / "data"),
        "RATA_JWT_SECRET": JWT_SECRET,
    }
    command = [
        *RATA,
        "serve",
        "--config",
        str(config),
        "--port",
        str(port),
        "--certfile",
        str(cert),
        "--keyfile",
        str(key),
    ]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        async with httpx.AsyncClient(
            base_url=f"https://127.0.0.1:{port}", verify=ssl.create_default_context(cafile=str(cert)), timeout=10
        ) as http:
            async with asyncio.timeout(120):
                while True:
                    try:
                        ready = await http.get("/api/v1/ready")
                        break
                    except httpx.TransportError:
                        assert process.poll() is None, process.stdout.read().decode() if process.stdout else ""
                        await asyncio.sleep(0.2)
            login = await http.post("/api/v1/auth/login", json={"username": "bob", "password": PASSWORDS["bob"]})
            token = login.json()["access_token"]
            order = await http.post(
                "/api/v1/orders",
                json={"symbol": "GOOG", "side": "buy", "quantity": "1"},
                headers={"Authorization": f"Bearer {token}"},
            )
        with pytest.raises(httpx.TransportError):
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as plain:
                await plain.get("/api/v1/health")
        assert ready.status_code == 200, ready.text
        assert order.status_code == 201, order.text
    finally:
        process.send_signal(signal.SIGTERM)
        output = await asyncio.to_thread(process.communicate, timeout=120)
    log = output[0].decode()
    # uvicorn shuts down gracefully, then re-raises the signal to rata's handler, which exits 0
    assert process.returncode == 0, log
    assert "Application shutdown complete" in log
    assert token not in log
    assert PASSWORDS["bob"] not in log
