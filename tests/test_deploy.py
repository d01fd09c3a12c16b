"""deploy/ validated offline, as CI can: the Compose file against the compose-spec JSON
schema (vendored in tests/data/), the Kubernetes manifests against the Kubernetes schemas
the `kubernetes-validate` package ships, the Dockerfile read instruction by instruction;
and the shape each promises (three NATS nodes, two gateways, probes on routes that exist,
each role's Secret holding exactly the files that role reads)."""

from __future__ import annotations

import asyncio
import json
import shlex
import shutil
import socket
import sys
import tomllib
from pathlib import Path

import httpx
import jsonschema
import pytest
import yaml
from jsonschema import ValidationError
from kubernetes_validate.utils import validate as k8s_validate

from broker.home import GATEWAY, Home
from broker.http.app import create_app
from broker.runtime import gateway_running, run_api
from tests.conftest import free_port

ROOT = Path(__file__).parent.parent
DEPLOY = ROOT / "deploy"
K8S_VERSION = "1.30"  # the oldest Kubernetes the manifests promise to work on


def compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))


def compose_errors(doc: dict) -> list[str]:
    schema = json.loads((ROOT / "tests" / "data" / "compose-spec.json").read_text("utf-8"))
    validator = jsonschema.Draft7Validator(schema)
    return [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(doc)]


def manifests() -> list[tuple[str, dict]]:
    out = []
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        docs = yaml.safe_load_all(path.read_text(encoding="utf-8"))
        out += [(path.name, doc) for doc in docs if doc]
    return out


def kind(name: str, wanted: str) -> dict:
    [doc] = [d for _, d in manifests() if d["kind"] == wanted and d["metadata"]["name"] == name]
    return doc


def _containers(workload: dict) -> list[dict]:
    return list(workload["spec"]["template"]["spec"]["containers"])


def _volumes(workload: dict) -> list[dict]:
    return list(workload["spec"]["template"]["spec"]["volumes"])


def secret_items(workload: dict) -> dict[str, str]:
    """The `home` volume of a pod: Secret key -> path inside the home."""
    [home] = [v for v in workload["spec"]["template"]["spec"]["volumes"] if v["name"] == "home"]
    return {item["key"]: item["path"] for item in home["secret"]["items"]}


# -- Compose ------------------------------------------------------------------------------


@pytest.fixture
def offline(monkeypatch):
    """Any attempt to open a network connection fails the test: CI validates offline."""

    def refuse(*_args, **_kwargs):
        raise AssertionError("validation tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_compose_file_is_valid_against_the_compose_spec(offline):
    """`docker compose` would accept the file's structure (schema from compose-spec)."""
    assert compose_errors(compose()) == []


def test_the_compose_check_catches_a_misspelt_key():
    """The validation above is not vacuous: a typo in a service is reported."""
    doc = compose()
    doc["services"]["api"]["comand"] = doc["services"]["api"].pop("command")
    assert any("comand" in error for error in compose_errors(doc))


def test_compose_runs_the_production_shape():
    """Three NATS nodes each on its own rendered config, PostgreSQL, a provisioning job,
    two gateway workers with their metrics listener, and the API; every secret, volume and
    dependency named is declared, and only the provisioning job holds the admin identity."""
    doc = compose()
    services = doc["services"]
    assert {"nats-1", "nats-2", "nats-3", "postgres", "provision", "gateway-1", "gateway-2",
            "api"} <= set(services)  # fmt: skip
    for n in (1, 2, 3):
        mounts = services[f"nats-{n}"]["volumes"]
        assert f"./rendered/nats-{n}.conf:/etc/nats/nats.conf:ro" in mounts
    # the log signer alone holds the checkpoint key: no network, the gateways share its
    # socket's volume and never mount the key's
    signer = services["signer"]
    assert signer["command"][:3] == ["signer", "--dir", "/var/lib/s284.signer"]
    assert signer["network_mode"] == "none"
    assert "signer:/var/lib/s284.signer" in signer["volumes"]
    sock_path = signer["command"][signer["command"].index("--socket") + 1]
    for name in ("gateway-1", "gateway-2"):
        assert services[name]["command"] == [
            "gateway", "--metrics-port", "9284", "--inbox-port", "8285"]  # fmt: skip
        assert services[name]["ports"][0].endswith(":8285")  # the contacts' inbox
        assert services[name]["environment"]["S284_SIGNER_SOCKET"] == sock_path
        assert f"signer-socket:{Path(sock_path).parent}" in services[name]["volumes"]
        deps = services[name]["depends_on"]
        assert deps["signer"]["condition"] == "service_healthy"
    key_volume = [name for name, svc in services.items()
                  if any(v.startswith("signer:") for v in svc.get("volumes", []))]  # fmt: skip
    assert sorted(key_volume) == ["signer", "signer-key"]
    holders = [name for name, svc in services.items() if "log_key" in svc.get("secrets", [])]
    assert holders == ["signer-key"]
    assert services["api"]["command"][0] == "api"
    assert services["provision"]["command"] == ["provision"]
    for name, service in services.items():
        assert set(service.get("secrets", [])) <= set(doc["secrets"]), name
        assert set(service.get("depends_on", {})) <= set(services), name
        named = [v.split(":")[0] for v in service.get("volumes", []) if not v.startswith(".")]
        assert set(named) <= set(doc["volumes"]), name
        if name != "provision":
            assert "admin_home" not in service.get("secrets", []), name


# -- Kubernetes ---------------------------------------------------------------------------


def test_every_manifest_is_valid_against_the_kubernetes_schemas(offline):
    """Strict validation (unknown fields refused) with the schemas kubernetes-validate
    ships: no cluster, no network."""
    docs = manifests()
    assert len(docs) >= 15
    for filename, doc in docs:
        k8s_validate(doc, K8S_VERSION, strict=True)  # raises ValidationError with the path
        assert doc["metadata"].get("namespace", "s284") == "s284", filename


def test_the_kubernetes_check_catches_a_wrong_field():
    """Not vacuous: a misspelt field of a Deployment is refused."""
    doc = kind("s284-gateway", "Deployment")
    doc["spec"]["replica"] = doc["spec"].pop("replicas")
    with pytest.raises(ValidationError, match="replica"):
        k8s_validate(doc, K8S_VERSION, strict=True)


def test_kubernetes_runs_the_production_shape():
    """A three-node NATS StatefulSet whose config comes from a Secret, two gateways and an
    API with liveness on /healthz and readiness on /readyz (routes the app serves), a
    Service for the API, and a default-deny NetworkPolicy."""
    nats = kind("nats", "StatefulSet")
    assert nats["spec"]["replicas"] == 3
    volumes = {v["name"]: v for v in nats["spec"]["template"]["spec"]["volumes"]}
    assert volumes["config"]["secret"]["secretName"] == "nats-config"
    assert set(kind("nats-config", "Secret")["stringData"]) == {f"nats-{n}.conf" for n in range(3)}
    routes = {route.path for route in create_app({}, metrics=None).routes}
    for name, replicas in (("s284-gateway", 2), ("s284-api", 2)):
        deployment = kind(name, "Deployment")
        assert deployment["spec"]["replicas"] == replicas
        main = name.removeprefix("s284-")
        [container] = [c for c in _containers(deployment) if c["name"] == main]
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert {"/healthz", "/readyz"} <= routes
    assert kind("s284-api", "Service")["spec"]["selector"] == {"app.kubernetes.io/name": "s284-api"}
    # the contacts' inbox is served by the gateway workers, where the alert flow runs
    inbox = kind("s284-inbox", "Service")["spec"]
    assert inbox["selector"] == {"app.kubernetes.io/name": "s284-gateway"}
    [gateway] = [c for c in _containers(kind("s284-gateway", "Deployment"))
                 if c["name"] == "gateway"]  # fmt: skip
    ports = {p["name"]: p["containerPort"] for p in gateway["ports"]}
    assert gateway["args"][gateway["args"].index("--inbox-port") + 1] == str(ports["inbox"])
    assert inbox["ports"][0]["targetPort"] == "inbox"
    deny = kind("default-deny", "NetworkPolicy")["spec"]
    assert deny["podSelector"] == {}
    assert set(deny["policyTypes"]) == {"Ingress", "Egress"}


def test_no_secret_value_is_committed():
    """The Secrets declare their keys; every value is empty until the operator fills it."""
    secrets = [doc for _, doc in manifests() if doc["kind"] == "Secret"]
    assert len(secrets) >= 5
    for secret in secrets:
        assert all(value == "" for value in secret["stringData"].values()), secret["metadata"]


def test_each_role_mounts_only_its_own_keys():
    """The API holds no private key; only the provisioning Job holds the admin identity;
    the gateway holds its own key and the log's, not the directory's signing key."""
    api = secret_items(kind("s284-api", "Deployment"))
    assert not [path for path in api.values() if "private" in path or "creds" in path]
    gateway = secret_items(kind("s284-gateway", "Deployment"))
    assert "nats/admin/admin.json" not in gateway.values()
    assert "keys/directory.private.jwk.json" not in gateway.values()
    job = kind("s284-provision", "Job")
    assert "nats/admin/admin.json" in secret_items(job).values()


def test_only_the_signer_container_mounts_the_log_key():
    """In the gateway pod the checkpoint key's folder is mounted by the init container that
    fills it and by the `s284 signer` container; the gateway reaches the signer through the
    socket volume, pointed at it by S284_SIGNER_SOCKET, and never mounts the key."""
    pod = kind("s284-gateway", "Deployment")["spec"]["template"]["spec"]
    mounts = {c["name"]: {m["name"] for m in c["volumeMounts"]}
              for c in pod["initContainers"] + pod["containers"]}  # fmt: skip
    assert sorted(name for name, held in mounts.items() if "signer" in held) == [
        "signer", "signer-key"]  # fmt: skip
    [signer] = [c for c in pod["containers"] if c["name"] == "signer"]
    sock_path = signer["args"][signer["args"].index("--socket") + 1]
    [gateway] = [c for c in pod["containers"] if c["name"] == "gateway"]
    env = {e["name"]: e.get("value") for e in gateway["env"]}
    assert env["S284_SIGNER_SOCKET"] == sock_path
    assert "signer-socket" in mounts["gateway"]


def _home_from_items(source: Home, items: dict[str, str], target: Path) -> Home:
    """The home a pod sees: each Secret key, filled from the real home's file at its path."""
    for path in items.values():
        (target / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source.path / path, target / path)
    return Home(target)


@pytest.mark.nats
async def test_a_gateway_runs_on_exactly_what_its_secret_mounts(deployment, tmp_path):
    """A gateway whose home holds only the files the Deployment projects from its Secret
    starts, consumes and answers: the manifest's list of files is complete."""
    items = secret_items(kind("s284-gateway", "Deployment"))
    assert (
        items["gateway.creds.json"]
        == deployment.home.creds_path(GATEWAY).relative_to(deployment.home.path).as_posix()
    )
    pod_home = _home_from_items(deployment.home, items, tmp_path / "pod")
    # the signer container: a folder holding only the init container's copy of the key
    [key] = [i for v in _volumes(kind("s284-gateway", "Deployment")) if v["name"] == "signer-key"
             for i in v["secret"]["items"]]  # fmt: skip
    signer_dir = tmp_path / "signer"
    signer_dir.mkdir(mode=0o700)
    shutil.copy2(deployment.home.signer_path / key["path"], signer_dir / key["path"])
    sock = tmp_path / "signer.sock"
    signer = await asyncio.create_subprocess_exec(  # the real `s284 signer`, as the sidecar
        sys.executable, "-m", "broker.cli", "signer", "--dir", str(signer_dir),
        "--socket", str(sock), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    assert not pod_home.signer_path.exists()  # the gateway's pod holds no key at all
    settings = deployment.settings.model_copy(
        update={
            "home": pod_home.path,
            "nats_url": deployment.home.nats_url,
            "db_url": deployment.settings.database_url,
            "signer_socket": sock,
        }
    )
    try:
        async with (
            gateway_running(settings, asyncio.Event()),
            await deployment.client("corrections") as sender,
        ):
            receipt = await sender.send(kind="risk.update", purpose="offender_management",
                                        offender="S284-000950", to=["police"],
                                        payload={"note": "synthetic"}, timeout=30)  # fmt: skip
    finally:
        signer.terminate()
        output, _ = await asyncio.wait_for(signer.communicate(), 30)
    assert receipt.accepted
    assert not pod_home.signer_path.exists()
    # the signer signed the gateway's checkpoints: its state moved past zero
    assert json.loads((signer_dir / "state.json").read_text())["size"] >= 1, output
    assert receipt.accepted


@pytest.mark.nats
async def test_the_api_runs_on_exactly_what_its_secret_mounts(deployment, tmp_path):
    """`s284 api` on a home holding only the API Secret's files serves /readyz and
    /metrics: it needs no private key."""
    items = secret_items(kind("s284-api", "Deployment"))
    pod_home = _home_from_items(deployment.home, items, tmp_path / "pod")
    port = free_port()
    settings = deployment.settings.model_copy(
        update={
            "home": pod_home.path,
            "http_port": port,
            "db_url": deployment.settings.database_url,
        }
    )
    stop = asyncio.Event()
    task = asyncio.create_task(run_api(settings, stop))
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            for _ in range(100):
                try:
                    ready = await http.get("/readyz")
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.1)
            metrics = await http.get("/metrics")
    finally:
        stop.set()
        await task
    assert ready.status_code == 200
    assert "s284_audit_log_records" in metrics.text


# -- Dockerfile ---------------------------------------------------------------------------


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8").replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1])
        for line in lines
        if line and not line.startswith("#")
    ]


def test_dockerfile_copies_only_what_exists_and_every_package():
    """Every COPY source (outside a build stage) is in the repository, and every package
    the wheel is built from is copied: the image builds from a clean checkout."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    packages = {p.rstrip("*") for p in project["tool"]["setuptools"]["packages"]["find"]["include"]}
    copied = set()
    instructions = dockerfile()
    assert instructions[0][0] == "FROM"
    for op, args in instructions:
        if op not in {"COPY", "ADD"} or args.startswith("--from"):
            continue
        *sources, _dest = shlex.split(args)
        for source in sources:
            assert (ROOT / source).exists(), source
            copied.add(source.rstrip("/"))
    assert packages <= copied
    assert {"pyproject.toml", "README.md"} <= copied


def test_dockerfile_entrypoint_is_the_s284_command():
    """`docker run IMAGE gateway` runs `s284 gateway`, as a non-root user."""
    instructions = dict(dockerfile())  # the last of each instruction is the one in effect
    assert json.loads(instructions["ENTRYPOINT"]) == ["s284"]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "s284" in project["project"]["scripts"]
    assert instructions["USER"] not in {"root", "0"}
