"""`texgen serve` as a real process: CURVE keys and the bind policy, then SIGTERM.

One CURVE server on loopback serves the module; the SIGTERM test stops it, so it comes last.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from server_support import QUICK, REPO, SLOW, free_port, mesh_args, serve_process, stop_process, uv_sphere, wait_ready
from texgen import protocol
from texgen.cli import main as cli_main
from texgen.client import AuthRefused, Cancelled, Client, Failed, Progress
from texgen.errors import ConfigError
from texgen.server.auth import generate_keys, is_loopback, resolve_security


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("keys")
    assert cli_main(["keys", "generate", str(root / "server")]) == 0
    for name in ("alice", "mallory"):
        assert cli_main(["keys", "generate", str(root / name), "--name", name]) == 0
    (root / "allow").mkdir()
    shutil.copy(root / "alice" / "alice.key", root / "allow")
    return {"server_dir": root / "server", "allow": root / "allow", "server": root / "server" / "server.key",
            "alice": root / "alice" / "alice.key_secret", "mallory": root / "mallory" / "mallory.key_secret",
            "mallory_public": root / "mallory" / "mallory.key"}


@pytest.fixture(scope="module")
def curve_server(tiny_model_dir, keys, tmp_path_factory) -> Iterator[tuple[subprocess.Popen, str, Path]]:
    address = f"tcp://127.0.0.1:{free_port()}"
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    process = serve_process(["--bind", address, "--model", str(tiny_model_dir("sd15-controlnet")), "--device", "cpu",
                             "--keys", str(keys["server_dir"]), "--allow", str(keys["allow"]), "--heartbeat", "0.25",
                             "--client-timeout", "5", "--shutdown-grace", "10", "--scheduler", "ddim", "--vae-slicing"],
                            log)
    try:
        wait_ready(address, server_public_key=keys["server"], client_keys=keys["alice"])
        yield process, address, log
    finally:
        stop_process(process)


def alice(address: str, keys: dict, **kwargs) -> Client:
    return Client(address, server_public_key=keys["server"], client_keys=keys["alice"], **kwargs)


def test_bind_policy() -> None:
    assert all(map(is_loopback, ["tcp://127.0.0.1:5555", "tcp://localhost:1", "tcp://[::1]:5", "ipc:///tmp/x"]))
    assert not any(map(is_loopback, ["tcp://*:5555", "tcp://0.0.0.0:5555", "tcp://192.168.1.4:5555",
                                     "tcp://eth0:5555", "tcp://gpu-box:5555"]))
    assert resolve_security("tcp://127.0.0.1:5555", None, None, False).mode == "none"
    with pytest.raises(ConfigError, match="needs CURVE keys"):
        resolve_security("tcp://*:5555", None, None, False)


def test_insecure_warns_loudly(caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="texgen.server.auth"):
        assert resolve_security("tcp://0.0.0.0:5555", None, None, True).mode == "none"
    assert "UNAUTHENTICATED" in caplog.text


def test_key_folders_are_checked(tmp_path, keys) -> None:
    with pytest.raises(ConfigError, match="go together"):
        resolve_security("tcp://*:1", keys["server_dir"], None, False)
    with pytest.raises(ConfigError, match="texgen keys generate"):
        resolve_security("tcp://*:1", tmp_path, keys["allow"], False)
    with pytest.raises(ConfigError, match=r"no client public keys"):
        resolve_security("tcp://*:1", keys["server_dir"], tmp_path, False)
    assert resolve_security("tcp://*:1", keys["server_dir"], keys["allow"], False).mode == "curve"
    with pytest.raises(ConfigError, match="already exists"):
        generate_keys(keys["server_dir"], "server")


def test_a_public_bind_without_keys_refuses_to_start() -> None:
    result = subprocess.run([sys.executable, "-m", "texgen", "serve", "--bind", f"tcp://0.0.0.0:{free_port()}"],
                            capture_output=True, text=True, timeout=60, cwd=REPO)
    assert result.returncode == 2
    assert "needs CURVE keys" in result.stderr and "texgen keys generate" in result.stderr


def test_an_allowed_key_passes(curve_server, keys) -> None:
    _, address, _ = curve_server
    with alice(address, keys) as client:
        info = client.hello()
        assert info["auth"] == "curve"
        assert client.ping() < 1.0


def test_the_workers_load_the_models_with_the_servers_loading_options(curve_server, keys) -> None:
    _, address, _ = curve_server
    with alice(address, keys) as client:
        result = client.texture(*mesh_args(uv_sphere()), options=QUICK)
    assert result.report["loading"]["scheduler"] == "ddim" and result.report["loading"]["vae_slicing"]
    assert not result.report["loading"]["cpu_offload"]
    assert (result.report["device"], result.report["dtype"]) == ("cpu", "float32")


def test_an_unknown_key_is_refused(curve_server, keys) -> None:
    _, address, _ = curve_server
    with Client(address, server_public_key=keys["server"], client_keys=keys["mallory"], timeout=3) as client:
        with pytest.raises(AuthRefused, match="--allow"):
            client.hello()


def test_a_plain_client_is_refused(curve_server) -> None:
    _, address, _ = curve_server
    with Client(address, timeout=3) as client:
        with pytest.raises(AuthRefused, match="requires CURVE"):
            client.hello()


def test_a_wrong_server_key_is_refused(curve_server, keys) -> None:
    _, address, _ = curve_server
    with Client(address, server_public_key=keys["mallory_public"], client_keys=keys["alice"], timeout=3) as client:
        with pytest.raises(AuthRefused, match="does not match"):
            client.hello()


def test_sigterm_cancels_the_running_job_answers_the_queue_and_exits(curve_server, keys) -> None:
    process, address, log = curve_server
    with alice(address, keys) as client:
        worker_pid = client.status()["workers"][0]["pid"]
        running = client.submit_texture(*mesh_args(uv_sphere()), options=SLOW)
        events = running.events()
        for event in events:
            if isinstance(event, Progress) and event.stage == "generate":
                break
        queued = client.submit_texture(*mesh_args(uv_sphere()), options=QUICK)
        assert queued.position == 1
        process.send_signal(signal.SIGTERM)
        assert isinstance(list(events)[-1], Cancelled)
        end = list(queued.events())[-1]
        assert isinstance(end, Failed) and end.code == protocol.SHUTTING_DOWN
    assert process.wait(30) == 0
    with pytest.raises(ProcessLookupError):
        os.kill(worker_pid, 0)
    text = log.read_text()
    assert "shutting down: answering 1 queued job(s), cancelling 1 running" in text
    assert running.job in text and queued.job in text and "server stopped" in text
