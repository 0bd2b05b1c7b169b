"""The sandboxes: no network for generated code, limits that end a command with one sentence,
a clean environment, and records that say what ran where. Docker cases use a real engine."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from specloop.errors import SpecloopError
from specloop.sandbox import available, run
from specloop.sandbox.local import run_local
from specloop.sandbox.memory import MemoryCgroup

# Tries each "host:port" given in argv and prints {target: "connected" | "<errno name>: <text>"}.
CONNECT = """
import errno, json, socket, sys, time
out = {}
for target in sys.argv[1:]:
    host, port = target.rsplit(":", 1)
    start = time.monotonic()
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
        out[target] = "connected"
    except OSError as exc:
        out[target] = f"{errno.errorcode.get(exc.errno, exc.errno)}: {exc.strerror}"
    out[target + " s"] = time.monotonic() - start
print(json.dumps(out))
"""
# TEST-NET-1 (RFC 5737): routed nowhere, so even a broken sandbox sends nothing to a real host.
OUTSIDE = "192.0.2.1:80"


@pytest.fixture
def host_server() -> Iterator[str]:
    """A real TCP server on the host's 127.0.0.1 that accepts every connection."""
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                server.accept()[0].close()
            except TimeoutError:
                continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join()
    server.close()


@pytest.fixture(params=["local", "docker"])
def sandbox(request: pytest.FixtureRequest) -> dict[str, object]:
    """Keyword arguments for :func:`run` selecting one sandbox kind (Docker: a real engine)."""
    if request.param == "docker":
        return {"kind": "docker", "image": request.getfixturevalue("docker_base_image")}
    return {"kind": "local"}


def _py(code: str, *args: str) -> list[str]:
    return ["python3", "-c", code, *args]


def test_no_network_inside_but_the_host_server_answers_outside(sandbox, host_server, tmp_path):
    outside_sandbox = subprocess.run(_py(CONNECT, host_server), capture_output=True, text=True, check=True)
    assert json.loads(outside_sandbox.stdout)[host_server] == "connected"

    rec = run(_py(CONNECT, host_server, OUTSIDE), cwd=tmp_path, timeout_s=60, **sandbox)
    assert rec.ok, rec.stderr_tail
    result = json.loads(rec.stdout_tail)
    assert result[host_server] != "connected"
    assert result[host_server].split(":")[0] in ("ECONNREFUSED", "ENETUNREACH")
    assert result[OUTSIDE].startswith("ENETUNREACH: Network is unreachable")
    assert result[OUTSIDE + " s"] < 1.0
    assert rec.sandbox == ("local:netns" if sandbox["kind"] == "local" else f"docker:{sandbox['image']}")


def test_own_loopback_works_inside(sandbox, tmp_path):
    # A notebook kernel or a service and its smoke client talk over the sandbox's own 127.0.0.1.
    code = (
        "import socket; s = socket.create_server(('127.0.0.1', 0)); "
        "c = socket.create_connection(s.getsockname(), timeout=5); print('loopback ok')"
    )
    rec = run(_py(code), cwd=tmp_path, timeout_s=60, **sandbox)
    assert rec.ok, rec.stderr_tail
    assert rec.stdout_tail.strip() == "loopback ok"


def test_memory_breach_ends_with_a_sentence_naming_the_limit(sandbox, tmp_path):
    rec = run(_py("b = b'x' * (768 << 20); print('survived')"), cwd=tmp_path, memory_mb=128, **sandbox)
    assert rec.limit_hit == "memory"
    assert not rec.ok
    assert rec.message == "the command exceeded its 128 MB memory limit"
    assert "survived" not in rec.stdout_tail


@pytest.mark.parametrize("memory_by", ["cgroup-v1", "pss-poll"])
def test_each_local_memory_enforcer_stops_a_breach(memory_by, tmp_path):
    if memory_by == "cgroup-v1" and not MemoryCgroup.usable():
        pytest.skip("cgroup-v1 memory groups need root and cgroup v1")
    rec = run_local(_py("b = b'x' * (768 << 20)"), cwd=tmp_path, memory_mb=128, memory_by=memory_by)
    assert (rec.limit_hit, rec.limits["memory_by"]) == ("memory", memory_by)
    assert rec.message == "the command exceeded its 128 MB memory limit"


def test_within_the_memory_limit_a_command_runs(tmp_path):
    rec = run(_py("b = b'x' * (32 << 20); print(len(b))"), cwd=tmp_path, memory_mb=256)
    assert rec.ok and rec.stdout_tail.strip() == str(32 << 20)


def test_timeout_kills_the_command_and_names_the_limit(sandbox, tmp_path):
    rec = run(_py("import time; time.sleep(60)"), cwd=tmp_path, timeout_s=2, **sandbox)
    assert rec.limit_hit == "timeout"
    assert rec.message == "the command exceeded its 2 s wall-clock limit and was killed"
    assert 2 <= rec.seconds < 20


def test_timeout_kills_children_left_in_the_background(tmp_path):
    marker = tmp_path / "child_ran"
    code = (
        f"import subprocess, time; subprocess.Popen(['sh', '-c', 'sleep 3; touch {marker}']); time.sleep(60)"
    )
    rec = run(_py(code), cwd=tmp_path, timeout_s=1)
    assert rec.limit_hit == "timeout"
    subprocess.run(["sleep", "3.5"], check=True)
    assert not marker.exists()


def test_cpu_time_limit(sandbox, tmp_path):
    rec = run(_py("while True: pass"), cwd=tmp_path, cpu_s=1, timeout_s=60, **sandbox)
    assert rec.limit_hit == "cpu"
    assert rec.message == "the command exceeded its 1 s CPU-time limit"


def test_exit_code_seconds_output_hash_and_kept_log(sandbox, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    log = tmp_path / "logs" / "cmd.log"
    code = "import sys, time; time.sleep(0.3); print('to stdout'); print('to stderr', file=sys.stderr); sys.exit(3)"
    rec = run(_py(code), cwd=work, log_path=log, **sandbox)
    assert rec.exit_code == 3 and rec.limit_hit is None and not rec.ok
    assert rec.message == "the command exited 3"
    assert rec.seconds >= 0.3
    assert (rec.stdout_tail, rec.stderr_tail) == ("to stdout\n", "to stderr\n")
    assert rec.output_sha256 == hashlib.sha256(b"to stdout\nto stderr\n").hexdigest()
    assert log.read_bytes() == b"to stdout\nto stderr\n"
    assert rec.log_path == str(log)
    assert json.loads(json.dumps(rec.to_dict()))["output_sha256"] == rec.output_sha256


def test_tails_keep_the_last_4000_characters(tmp_path):
    rec = run(_py("print('a' * 10000 + 'END')"), cwd=tmp_path)
    assert len(rec.stdout_tail) == 4000 and rec.stdout_tail.endswith("aEND\n")


def test_callers_secrets_never_reach_the_command(sandbox, tmp_path, monkeypatch):
    monkeypatch.setenv("SPECLOOP_TEST_API_KEY", "sk-test-secret-value-123456")
    passed = {**os.environ, "MY_SERVICE_TOKEN": "tok-abcdef123", "SPECLOOP_SETTING": "visible"}
    code = "import json, os; print(json.dumps(dict(os.environ)))"
    rec = run(_py(code), cwd=tmp_path, env=passed, **sandbox)
    assert rec.ok, rec.stderr_tail
    inside = json.loads(rec.stdout_tail)
    assert inside["SPECLOOP_SETTING"] == "visible"
    assert "sk-test-secret-value-123456" not in rec.stdout_tail and "tok-abcdef123" not in rec.stdout_tail
    assert {"SPECLOOP_TEST_API_KEY", "MY_SERVICE_TOKEN"} <= set(rec.limits["env_dropped"])
    assert inside["PYTHONUNBUFFERED"] == "1"
    assert Path(inside["HOME"]) != Path.home()


def test_clean_env_without_caller_env(tmp_path, monkeypatch):
    monkeypatch.setenv("SPECLOOP_TEST_API_KEY", "sk-test-secret-value-123456")
    code = "import json, os; print(json.dumps(sorted(os.environ)))"
    rec = run([sys.executable, "-c", code], cwd=tmp_path)
    assert set(json.loads(rec.stdout_tail)) <= {"PATH", "HOME", "LANG", "PYTHONUNBUFFERED", "LC_CTYPE"}


def test_missing_command_is_a_record_not_an_exception(sandbox, tmp_path):
    rec = run(["no-such-command-here"], cwd=tmp_path, **sandbox)
    assert rec.exit_code in (126, 127) and not rec.ok


def test_docker_mounts_the_project_read_only_except_writable(docker_base_image, tmp_path):
    project = tmp_path / "project"
    (project / "src").mkdir(parents=True)
    (project / "src" / "data.txt").write_text("input")
    out = project / "results"
    code = (
        "import pathlib\n"
        "print(pathlib.Path('src/data.txt').read_text())\n"
        "pathlib.Path('results/out.txt').write_text('written')\n"
        "try:\n    pathlib.Path('src/new.txt').write_text('x')\nexcept OSError as e:\n    print(e.strerror)\n"
    )
    rec = run(_py(code), cwd=project, kind="docker", image=docker_base_image, writable=[out], cpus=1)
    assert rec.ok, rec.stderr_tail
    assert rec.stdout_tail.splitlines() == ["input", "Read-only file system"]
    assert (out / "out.txt").read_text() == "written"
    assert not (project / "src" / "new.txt").exists()
    assert rec.limits["cpus"] == 1 and rec.limits["network"] == "none"


def test_docker_leaves_no_container_behind(docker_engine, docker_base_image, tmp_path):
    run(_py("import time; time.sleep(30)"), cwd=tmp_path, kind="docker", image=docker_base_image, timeout_s=1)
    listed = subprocess.run(
        [docker_engine, "ps", "-a", "--filter", "name=specloop-sandbox-", "-q"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert listed.stdout.strip() == ""


def test_unknown_kind_is_one_sentence(tmp_path):
    with pytest.raises(SpecloopError, match="unknown sandbox kind 'vm'"):
        run(["true"], cwd=tmp_path, kind="vm")


def test_missing_cwd_is_one_sentence(tmp_path):
    with pytest.raises(SpecloopError, match="does not exist"):
        run(["true"], cwd=tmp_path / "missing")


def test_docker_without_an_engine_is_one_sentence(tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    with pytest.raises(SpecloopError, match="needs a running Docker engine"):
        run(["true"], cwd=tmp_path, kind="docker", image="specloop-base:bookworm")
    assert available()["docker"].startswith("unavailable: ")


def test_docker_without_an_image_is_one_sentence(docker_engine, tmp_path):
    with pytest.raises(SpecloopError, match="needs an image"):
        run(["true"], cwd=tmp_path, kind="docker")
    with pytest.raises(SpecloopError, match="is not on this engine"):
        run(["true"], cwd=tmp_path, kind="docker", image="specloop-no-such-image:0")


def test_available_reports_each_kind(docker_engine):
    report = available()
    assert set(report) == {"local", "docker"}
    assert report["local"].startswith("ok: local:netns")
    assert report["docker"].startswith("ok: Docker engine ")


def test_sandbox_runs_the_interpreter_it_is_given(tmp_path):
    rec = run([sys.executable, "-c", "import sys; print(sys.prefix)"], cwd=tmp_path)
    assert rec.ok and rec.stdout_tail.strip() == sys.prefix


def _record_from_child(argv: list[str], *, prefix: list[str], env: dict[str, str]) -> dict:
    """Call :func:`run` in a separate interpreter (another user, another PATH) and read its record.

    The working directory is ``/`` so that another user can enter it; the sandbox writes nothing there.
    """
    if not Path("/usr/bin/python3").exists():
        pytest.skip("these cases run the sandbox from the system's /usr/bin/python3")
    code = (
        "import json, sys\nfrom pathlib import Path\nfrom specloop.sandbox import run\n"
        "print(json.dumps(run(json.loads(sys.argv[1]), cwd=Path('/'), memory_mb=128).to_dict()))\n"
    )
    done = subprocess.run(
        [*prefix, "/usr/bin/python3", "-c", code, json.dumps(argv)],
        capture_output=True,
        text=True,
        cwd="/",
        env={**env, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
        check=True,
    )
    return json.loads(done.stdout)


def test_unprivileged_caller_gets_a_user_and_network_namespace(host_server):
    if os.geteuid() != 0 or shutil.which("runuser") is None:
        pytest.skip("switching to the nobody user needs root and runuser")
    rec = _record_from_child(
        ["/usr/bin/python3", "-c", CONNECT, host_server, OUTSIDE],
        prefix=["runuser", "-u", "nobody", "--"],
        env={"PATH": os.environ["PATH"]},
    )
    assert (rec["sandbox"], rec["limits"]["network"]) == (
        "local:netns",
        "unshare --user --map-root-user --net",
    )
    assert rec["limits"]["memory_by"] == "pss-poll"
    result = json.loads(rec["stdout_tail"])
    assert result[host_server] != "connected"
    assert result[OUTSIDE].startswith("ENETUNREACH")


def test_without_unshare_the_fallback_says_it_is_not_isolated(host_server, tmp_path):
    empty = tmp_path / "empty_path"
    empty.mkdir()
    rec = _record_from_child(
        ["/usr/bin/python3", "-c", CONNECT, host_server], prefix=[], env={"PATH": str(empty)}
    )
    assert rec["sandbox"] == "local:no-netns" and rec["limits"]["network"] == "none"
    assert rec["message"].endswith(
        "it ran without network isolation because no network namespace can be made here"
    )
    assert json.loads(rec["stdout_tail"])[host_server] == "connected"


@pytest.mark.parametrize("memory_by", ["auto", "pss-poll"])
def test_torch_trains_under_a_limit_that_rlimit_as_would_break(memory_by, tmp_path):
    # RLIMIT_AS at 2048 MB makes `import torch` itself fail here (it maps ~3.6 GB of address space).
    code = (
        "import torch; m = torch.nn.Linear(64, 8); opt = torch.optim.SGD(m.parameters(), lr=0.1)\n"
        "loss = m(torch.randn(32, 64)).pow(2).mean(); loss.backward(); opt.step(); print('stepped')"
    )
    rec = run_local(
        [sys.executable, "-c", code], cwd=tmp_path, memory_mb=2048, memory_by=memory_by, timeout_s=300
    )
    assert rec.ok, rec.stderr_tail
    assert rec.stdout_tail.strip() == "stepped"


def test_a_memory_group_is_removed_with_what_it_held(tmp_path):
    group = MemoryCgroup.create(64)
    if group is None:
        pytest.skip("cgroup-v1 memory groups need root and cgroup v1")
    sleeper = subprocess.Popen(["sleep", "60"])
    (group.path / "cgroup.procs").write_text(str(sleeper.pid))
    group.remove()
    assert sleeper.wait(timeout=10) == -9
    assert not group.path.exists()
