"""Session fixtures for tests that need a real Docker engine and a locally built base image.

``docker_engine`` uses the engine that answers ``docker info``, or starts
``dockerd --bridge=none --iptables=false --ip-masq=false`` in the background (no bridge network
is ever made on these machines) and stops it at session end, only if it started it.
``docker_base_image`` builds ``specloop-base:bookworm`` from Debian's packages with debootstrap
once per machine (no registry is reachable) and reuses it afterwards.

They skip only when the tests do not run as root or neither docker nor dockerd is installed; with
``CI=true`` they fail instead, so CI proves the Docker tests ran.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

BASE_IMAGE = "specloop-base:bookworm"
BASE_PACKAGES = "python3,python3-venv,ca-certificates"
DOCKERD_FLAGS = ("--bridge=none", "--iptables=false", "--ip-masq=false")
ENGINE_WAIT_S = 60


def _skip_or_fail(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI must run the Docker tests, but {reason}")
    pytest.skip(reason)


def _engine_answers() -> bool:
    docker = shutil.which("docker")
    if docker is None:
        return False
    try:
        done = subprocess.run([docker, "info"], capture_output=True, timeout=15, check=False)
    except subprocess.TimeoutExpired:
        return False
    return done.returncode == 0


def _start_dockerd(dockerd: str, log: Path) -> subprocess.Popen | None:
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            [dockerd, *DOCKERD_FLAGS], stdout=fh, stderr=subprocess.STDOUT, start_new_session=True
        )
    deadline = time.monotonic() + ENGINE_WAIT_S
    while time.monotonic() < deadline:
        if _engine_answers():
            return proc
        if proc.poll() is not None:
            # Another session may have started one at the same moment; use that one then.
            return None
        time.sleep(0.5)
    return proc


@pytest.fixture(scope="session")
def docker_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The path of the docker client, talking to a running engine with no bridge network."""
    docker, dockerd = shutil.which("docker"), shutil.which("dockerd")
    if os.geteuid() != 0:
        _skip_or_fail("the Docker tests need root")
    if docker is None and dockerd is None:
        _skip_or_fail("neither docker nor dockerd is installed (apt-get install docker.io)")
    started = None
    if not _engine_answers():
        if dockerd is None:
            pytest.fail("no Docker engine answers and dockerd is not installed (apt-get install docker.io)")
        log = tmp_path_factory.mktemp("dockerd") / "dockerd.log"
        started = _start_dockerd(dockerd, log)
        if not _engine_answers():
            if started is not None:
                started.kill()
                started.wait()
            tail = log.read_text(errors="replace")[-2000:]
            pytest.fail(f"dockerd did not answer within {ENGINE_WAIT_S} s; its log ends:\n{tail}")
    if docker is None:
        pytest.fail("dockerd runs but there is no docker client on PATH")
    try:
        yield docker
    finally:
        if started is not None and started.poll() is None:
            started.terminate()
            try:
                started.wait(timeout=60)
            except subprocess.TimeoutExpired:
                started.kill()
                started.wait()


def _image_exists(docker: str, image: str) -> bool:
    return (
        subprocess.run([docker, "image", "inspect", image], capture_output=True, check=False).returncode == 0
    )


def _build_base_image(docker: str, rootfs: Path) -> None:
    debootstrap = shutil.which("debootstrap")
    if debootstrap is None:
        pytest.fail(f"{BASE_IMAGE} is missing and debootstrap is not installed (apt-get install debootstrap)")
    done = subprocess.run(
        [debootstrap, "--variant=minbase", f"--include={BASE_PACKAGES}", "bookworm", str(rootfs)],
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(f"debootstrap failed: {(done.stdout + done.stderr)[-2000:]}")
    tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
    imported = subprocess.run(
        [docker, "import", "-", BASE_IMAGE], stdin=tar.stdout, capture_output=True, text=True, check=False
    )
    assert tar.stdout is not None
    tar.stdout.close()
    if tar.wait() != 0 or imported.returncode != 0:
        pytest.fail(f"docker import of {BASE_IMAGE} failed: {imported.stderr[-2000:]}")


@pytest.fixture(scope="session")
def docker_base_image(docker_engine: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """``specloop-base:bookworm`` (Debian 12 minbase with Python 3.11), built once per machine."""
    # Sessions running at once on one machine build it once between them: the lock sits in the
    # directory all of this user's pytest sessions share.
    with (tmp_path_factory.getbasetemp().parent / "specloop-base-image.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _image_exists(docker_engine, BASE_IMAGE):
            rootfs = tmp_path_factory.mktemp("base_image") / "rootfs"
            try:
                _build_base_image(docker_engine, rootfs)
            finally:
                shutil.rmtree(rootfs, ignore_errors=True)
    return BASE_IMAGE
