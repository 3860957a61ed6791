"""`anisora curate run --engine ray --ray-address ...` on a real two-node Ray cluster on this machine: a head
node (`ray start --head`, one CPU) and a second node process joined to it (one CPU and a resource `node2`),
each in its own process group. The command joins the cluster by address like a user's would; the work
runs on both nodes and the outputs equal the local engine's.

Teardown kills exactly what this module started: the two process groups, then any process still carrying
its environment's marker (Ray starts workers in sessions of their own). Never `ray stop`: it stops every
Ray on the machine."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("ray", reason="the ray extra is not installed")

from anisora.cli import main
from anisora.curate import pipeline
from curate_ray_helpers import corpus, loads, outputs, ray_environment

RAY = str(Path(sys.executable).with_name("ray"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_node(args: list[str], name: str, log: Path) -> subprocess.Popen:
    """`ray start ... --block` in a process group of its own, as node `name`; returns once it is up."""
    with log.open("wb") as out:
        node = subprocess.Popen(
            [RAY, "start", *args, "--num-cpus", "1", "--disable-usage-stats", "--block"],
            env={**os.environ, "ANISORA_TEST_NODE": name},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + 180  # a guard against a hang, not a speed check
    while "Ray runtime started" not in log.read_text(errors="replace"):
        assert node.poll() is None and time.monotonic() < deadline, log.read_text(errors="replace")[-3000:]
        time.sleep(0.5)
    return node


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """The head node's address."""
    folder = tmp_path_factory.mktemp("cluster")
    with pytest.MonkeyPatch.context() as monkeypatch:
        environment = ray_environment(monkeypatch, folder / "hook")
        port = _free_port()
        head = ["--head", "--port", str(port), "--temp-dir", str(environment.temp), "--include-dashboard=0"]
        second = ["--address", f"127.0.0.1:{port}", "--resources", '{"node2": 1}']
        nodes = []
        try:
            nodes.append(_start_node(head, "head", folder / "head.log"))
            nodes.append(_start_node(second, "node2", folder / "node2.log"))
            yield f"127.0.0.1:{port}"
        finally:
            for node in nodes:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(node.pid, signal.SIGKILL)
                node.wait()
            environment.clean()


def test_a_two_node_cluster_curates_what_the_local_engine_does(cluster, tmp_path, monkeypatch):
    log = tmp_path / "loads"
    log.mkdir()
    corpus(tmp_path / "corpus", range(340, 346))
    # a model scorer as well: its actors reserve no CPU, so that each node keeps its CPU for decoding
    settings = ["--set", f"scorers.counting.log={log}", "--set", "ray.model_actors=2"]
    settings += ["--set", "ray.cpus_per_actor=0", "--quiet"]
    command = ["curate", "run", str(tmp_path / "corpus"), *settings]
    assert main([*command, "--out", str(tmp_path / "local")]) == 1  # 1: broken.mp4 failed

    nodes = []
    run_ray = pipeline.run_ray

    def spy(*args, **kwargs):
        for result in run_ray(*args, **kwargs):
            nodes.append(result.node)
            yield result

    monkeypatch.setattr(pipeline, "run_ray", spy)
    ray_command = [*command, "--out", str(tmp_path / "ray"), "--engine", "ray", "--workers", "2"]
    assert main([*ray_command, "--ray-address", cluster]) == 1

    assert outputs(tmp_path / "ray") == outputs(tmp_path / "local")
    assert len(nodes) == 7 and len(set(nodes)) == 2  # every video reported, decoded on both nodes
    actors = [node for pid, node in loads(log) if pid != os.getpid()]  # not the local run's load
    assert len(actors) == 2 and set(actors) <= {"head", "node2"}
