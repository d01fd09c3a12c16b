"""The three-node NATS cluster configuration: every rendered node config is one
nats-server accepts (`nats-server -t`), with routes to the other nodes over verified TLS,
its own store, fsync always; the example in deploy/nats/ is what the renderer makes; and
streams are R3 on a cluster, R1 embedded."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from broker.home import Home
from broker.nats.cluster import ClusterNode, client_urls, render_node, replicas_for
from broker.nats.config import ADMIN, ALL_USERS
from broker.nats.server import nats_server_binary
from broker.nats.streams import consumer_specs, stream_specs
from broker.nats.tls import TlsFiles
from broker.nats.transport import StreamLimits
from tests.conftest import free_port, s284

DEPLOY = Path(__file__).resolve().parent.parent / "deploy" / "nats"
LIMITS = StreamLimits(1024 * 1024, 30.0, 10)


def _example_nodes() -> list[ClusterNode]:
    return [
        ClusterNode(f"s284-nats-{i}", 4222, 6222, Path("/data/jetstream"), f"s284-nats-{i}", 8222)
        for i in (1, 2, 3)
    ]


def _example() -> dict[str, str]:
    """deploy/nats/: three hosts, the usual NATS ports, bcrypt placeholders that match no
    password (an operator puts in the hashes of the logins they issue)."""
    users = {
        u: f"$2a$10$REPLACE.WITH.BCRYPT.HASH.OF.{u.upper()}.PASSWORD" for u in [*ALL_USERS, ADMIN]
    }
    tls = TlsFiles(Path("/etc/s284/tls/ca.pem"), Path("/etc/s284/tls/server.pem"),
                   Path("/etc/s284/tls/server.key"))  # fmt: skip
    nodes = _example_nodes()
    return {f"{n.name}.conf": render_node(n, nodes, users, tls) for n in nodes}


def test_deploy_example_is_what_the_renderer_makes() -> None:
    """The checked-in example cannot drift from the code (S284_WRITE_EXAMPLES=1 rewrites it)."""
    example = _example()
    if os.environ.get("S284_WRITE_EXAMPLES") == "1":
        for name, text in example.items():
            (DEPLOY / name).write_text(text)
    for name, text in example.items():
        assert (DEPLOY / name).read_text() == text, f"deploy/nats/{name} is stale"


def test_each_node_routes_to_the_others_over_verified_tls() -> None:
    text = _example()["s284-nats-2.conf"]
    cluster = json.loads(text.split("cluster: ", 1)[1])
    assert cluster["routes"] == ["nats-route://s284-nats-1:6222", "nats-route://s284-nats-3:6222"]
    assert cluster["tls"]["verify"] is True
    assert '"sync_interval": "always"' in text
    assert 'server_name: "s284-nats-2"' in text


def test_streams_and_consumers_are_r3_on_a_cluster_and_r1_embedded() -> None:
    assert replicas_for(1) == 1
    assert replicas_for(3) == 3
    assert replicas_for(5) == 3  # R3 is enough; more replicas only slow every write
    agencies = ["police", "health"]
    assert {s.replicas for s in stream_specs(LIMITS, agencies)} == {1}
    assert {s.replicas for s in stream_specs(LIMITS, agencies, 3)} == {3}
    assert {c.replicas for c in consumer_specs(LIMITS, agencies, 3)} == {3}


def test_clients_are_given_every_node() -> None:
    nodes = _example_nodes()
    assert client_urls(nodes).split(",") == [f"tls://s284-nats-{i}:4222" for i in (1, 2, 3)]


@pytest.mark.nats
def test_lab_render_writes_configs_nats_server_accepts(tmp_path: Path) -> None:
    """`s284 lab render --out DIR` from a real home: `nats-server -t` passes on each file,
    and the files are readable by their owner only (they hold password hashes)."""
    home = Home(tmp_path / "home")
    home.init(free_port())
    out = tmp_path / "cluster"
    done = s284("lab", "render", "--home", str(home.path), "--out", str(out))
    assert done.returncode == 0, done.stderr
    configs = sorted(out.glob("*.conf"))
    assert [c.name for c in configs] == ["s284-1.conf", "s284-2.conf", "s284-3.conf"]
    for conf in configs:
        assert conf.stat().st_mode & 0o077 == 0
        test = subprocess.run(
            [str(nats_server_binary()), "-t", "-c", str(conf)],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        assert test.returncode == 0, test.stderr
        assert "is valid" in test.stdout + test.stderr


def test_lab_render_refuses_a_missing_home(tmp_path: Path) -> None:
    done = s284("lab", "render", "--home", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o"))
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert "no s284 deployment" in done.stderr


def test_lab_render_for_hosts_names_each_node_and_issues_its_certificate(tmp_path: Path) -> None:
    """`--hosts nats-1,nats-2,nats-3` (the Compose services): `nats-1.conf`.. with routes to
    the other hosts on 6222, the store and TLS paths the node will see, a certificate per
    node from the home's CA naming its host; `nats-server -t` accepts each (TLS files
    mounted where the config says: here the rendered folder itself)."""
    from cryptography import x509

    home = Home(tmp_path / "home")
    home.init(free_port())
    out = tmp_path / "rendered"
    done = s284(
        "lab", "render", "--home", str(home.path), "--out", str(out),
        "--hosts", "nats-1,nats-2,nats-3", "--store-dir", str(tmp_path / "js"),
        "--tls-dir", str(out / "tls"),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    configs = sorted(out.glob("*.conf"))
    assert [c.name for c in configs] == ["nats-1.conf", "nats-2.conf", "nats-3.conf"]
    text = configs[0].read_text()
    assert "nats-route://nats-2:6222" in text
    assert "nats-route://nats-3:6222" in text
    assert str(out / "tls" / "nats-1.pem") in text
    cert = x509.load_pem_x509_certificate((out / "tls" / "nats-2.pem").read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "nats-2" in names.get_values_for_type(x509.DNSName)
    ca = x509.load_pem_x509_certificate((out / "tls" / "ca.pem").read_bytes())
    assert cert.issuer == ca.subject
    for conf in configs:
        assert conf.stat().st_mode & 0o077 == 0
        test = subprocess.run(
            [str(nats_server_binary()), "-t", "-c", str(conf)],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        assert test.returncode == 0, test.stderr
