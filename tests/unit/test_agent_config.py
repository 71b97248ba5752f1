"""kpy-agent's settings: flags, a --config file (deploy/config/agent.yaml
must load), and errors that name the setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from kpy.agent.main import config_from

ROOT = Path(__file__).resolve().parents[2]


def test_the_deploy_example_loads() -> None:
    config, settings = config_from(["--config", str(ROOT / "deploy" / "config" / "agent.yaml")])
    assert config.node.name == "machine-1"
    assert config.root_dir == Path("/var/lib/kpy/agent")
    assert config.pod_manifest_path == Path("/etc/kpy/manifests")
    assert config.node.labels == {"topology.kubernetes.io/zone": "zone-a"}
    assert settings["runtime"] == "auto"


def test_flags_win_over_the_file(tmp_path: Path) -> None:
    file = tmp_path / "agent.yaml"
    file.write_text("node-name: from-file\nmax-pods: 20\nregister-with-taints: [a=b:NoSchedule]\n")
    config, _ = config_from(["--config", str(file), "--node-name", "from-flag"])
    assert config.node.name == "from-flag"
    assert config.node.max_pods == 20
    assert config.node.taints == ("a=b:NoSchedule",)


@pytest.mark.parametrize(
    ("name", "words", "message"),
    [
        ("unknown setting", ["--config", "{file}"], "unknown setting 'colour'"),
        ("bad label", ["--node-labels", "novalue"], "'novalue' is not key=value"),
        ("bad port", ["--port", "70000"], "--port must be between 0 and 65535"),
    ],
)
def test_bad_settings_are_named(
    name: str, words: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "agent.yaml"
    file.write_text("colour: blue\n")
    with pytest.raises(SystemExit):
        config_from([w.replace("{file}", str(file)) for w in words])
    assert message in capsys.readouterr().err, name
