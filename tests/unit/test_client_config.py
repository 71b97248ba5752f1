"""Where the client finds its API servers (`kpy.client.config`): defaults,
`~/.kpy/config`, `KPY_CONFIG`, overrides, and errors that name the file and
the field."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest

from kpy.client import Client, ClientConfig, ConfigError, config_path, load_config

if TYPE_CHECKING:
    from pathlib import Path


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh HOME without a config, and no KPY_CONFIG."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("KPY_CONFIG", raising=False)
    return home


def write_home_config(home: Path, text: str) -> Path:
    path = home / ".kpy" / "config"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    return path


@dataclass(frozen=True)
class LoadCase:
    name: str
    home_file: str | None  # ~/.kpy/config
    env_file: str | None = None  # a file KPY_CONFIG names
    kwargs: dict[str, Any] = field(default_factory=dict)
    want: ClientConfig = field(default_factory=ClientConfig)
    from_file: str = ""  # "home" or "env": which file `source` names


LOAD_CASES = [
    LoadCase("defaults without a file", None),
    LoadCase("empty file", "", from_file="home"),
    LoadCase(
        "servers, namespace and timeout",
        "servers:\n  - 10.0.0.1:6443\n  - 10.0.0.2:6444\nnamespace: team-a\ntimeout: 7.5\n",
        want=ClientConfig(("10.0.0.1:6443", "10.0.0.2:6444"), "team-a", 7.5),
        from_file="home",
    ),
    LoadCase(
        "one server as a string, integer timeout",
        "servers: api.example.com:443\ntimeout: 3\n",
        want=ClientConfig(("api.example.com:443",), "default", 3.0),
        from_file="home",
    ),
    LoadCase(
        "servers as a comma list, like the flag",
        "servers: 'a:1, b:2'\n",
        want=ClientConfig(("a:1", "b:2"), "default", 30.0),
        from_file="home",
    ),
    LoadCase(
        "IPv6 server",
        "servers: ['[::1]:6443']\n",
        want=ClientConfig(("[::1]:6443",), "default", 30.0),
        from_file="home",
    ),
    LoadCase(
        "KPY_CONFIG wins over ~/.kpy/config",
        "servers: [home:1]\nnamespace: home\n",
        env_file="servers: [env:2]\n",
        want=ClientConfig(("env:2",), "default", 30.0),
        from_file="env",
    ),
    LoadCase(
        "servers override a file",
        "servers: [file:1]\nnamespace: team-a\ntimeout: 5\n",
        kwargs={"servers": "x:1,y:2"},
        want=ClientConfig(("x:1", "y:2"), "team-a", 5.0),
        from_file="home",
    ),
    LoadCase(
        "servers override as a list, namespace override",
        None,
        kwargs={"servers": ["x:1"], "namespace": "team-b"},
        want=ClientConfig(("x:1",), "team-b", 30.0),
    ),
    LoadCase("empty overrides change nothing", None, kwargs={"servers": "", "namespace": ""}),
]


@pytest.mark.parametrize("case", LOAD_CASES, ids=lambda c: c.name)
def test_load(case: LoadCase, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = {"home": None, "env": None}
    if case.home_file is not None:
        files["home"] = write_home_config(home, case.home_file)
    if case.env_file is not None:
        env = tmp_path / "elsewhere.yaml"
        env.write_text(case.env_file)
        monkeypatch.setenv("KPY_CONFIG", str(env))
        files["env"] = env

    config = load_config(**case.kwargs)

    assert (config.servers, config.namespace, config.timeout) == (
        case.want.servers,
        case.want.namespace,
        case.want.timeout,
    ), case.name
    source = files.get(case.from_file)
    assert config.source == (str(source) if source else ""), case.name


def test_config_path(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert config_path() == home / ".kpy" / "config"
    monkeypatch.setenv("KPY_CONFIG", str(tmp_path / "other"))
    assert config_path() == tmp_path / "other"


def test_explicit_path_wins(home: Path, tmp_path: Path) -> None:
    write_home_config(home, "servers: [home:1]\n")
    other = tmp_path / "c.yaml"
    other.write_text("servers: [other:1]\n")
    assert load_config(other).servers == ("other:1",)


@dataclass(frozen=True)
class ErrorCase:
    name: str
    text: str
    says: tuple[str, ...]  # the message contains each


ERROR_CASES = [
    ErrorCase(
        "unknown field",
        "servers: [a:1]\nserver: b:2\n",
        ("'server'", "servers, namespace, timeout"),
    ),
    ErrorCase("non-string key", "1: x\n", ("'1'", "unknown field")),
    ErrorCase("not a mapping", "- a:1\n", ("expected a mapping",)),
    ErrorCase("not YAML", "servers: [a:1\n", ("cannot read",)),
    ErrorCase(
        "server without port", "servers: [localhost]\n", ("servers[0]", '"localhost"', "host:port")
    ),
    ErrorCase("second server bad", "servers: [a:1, 'b:x']\n", ("servers[1]", '"b:x"')),
    ErrorCase("server without host", "servers: [':6443']\n", ("servers[0]",)),
    ErrorCase("port out of range", "servers: ['a:70000']\n", ("servers[0]", "65535")),
    ErrorCase("port zero", "servers: ['a:0']\n", ("servers[0]",)),
    ErrorCase("empty server list", "servers: []\n", ("servers:", "non-empty")),
    ErrorCase("servers a mapping", "servers: {a: 1}\n", ("servers:",)),
    ErrorCase("empty namespace", "namespace: ''\n", ("namespace:",)),
    ErrorCase("namespace not a string", "namespace: [a]\n", ("namespace:",)),
    ErrorCase("zero timeout", "timeout: 0\n", ("timeout:", "positive")),
    ErrorCase("negative timeout", "timeout: -1\n", ("timeout:",)),
    ErrorCase("string timeout", "timeout: 30s\n", ("timeout:", "30s")),
    ErrorCase("boolean timeout", "timeout: true\n", ("timeout:",)),
    ErrorCase("infinite timeout", "timeout: .inf\n", ("timeout:",)),
    ErrorCase("nan timeout", "timeout: .nan\n", ("timeout:",)),
]


@pytest.mark.parametrize("case", ERROR_CASES, ids=lambda c: c.name)
def test_bad_file(case: ErrorCase, home: Path) -> None:
    path = write_home_config(home, case.text)
    with pytest.raises(ConfigError) as raised:
        load_config()
    message = str(raised.value)
    assert str(path) in message, (case.name, message)
    for text in case.says:
        assert text in message, (case.name, message)


def test_missing_kpy_config_file(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "nope.yaml"
    monkeypatch.setenv("KPY_CONFIG", str(missing))
    with pytest.raises(ConfigError, match="does not exist") as raised:
        load_config()
    assert str(missing) in str(raised.value)
    assert "KPY_CONFIG" in str(raised.value)


def test_missing_explicit_file(home: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")


def test_unreadable_file(home: Path) -> None:
    (home / ".kpy" / "config").mkdir(parents=True)  # a directory where the file goes
    with pytest.raises(ConfigError, match="cannot read"):
        load_config()


@pytest.mark.parametrize(
    "servers",
    ["a:1,", "a", ["a:1", "b"], "a:99999"],
    ids=["trailing comma", "no port", "second without port", "port out of range"],
)
def test_bad_servers_override(servers: str | list[str], home: Path) -> None:
    with pytest.raises(ConfigError, match="--server") as raised:
        load_config(servers=servers)
    assert "host:port" in str(raised.value)


def test_client_takes_servers_or_config(home: Path) -> None:
    write_home_config(home, "servers: [file:1]\nnamespace: team-a\n")
    assert Client().config.servers == ("file:1",)
    assert Client("a:1,b:2").config.servers == ("a:1", "b:2")
    assert Client(["a:1"]).namespace == "team-a"
    given = ClientConfig(("c:3",), "team-c", 2.0)
    assert Client(given).config is given


@pytest.mark.parametrize(
    ("name", "text", "want"),
    [
        ("none by default", "servers: [a:1]\n", ()),
        (
            "a list, in order",
            "schedulers: ['127.0.0.1:10251', 'b:2']\n",
            ("127.0.0.1:10251", "b:2"),
        ),
        ("a comma list", "schedulers: 'a:1,b:2'\n", ("a:1", "b:2")),
    ],
)
def test_schedulers(name: str, text: str, want: tuple[str, ...], home: Path) -> None:
    write_home_config(home, text)

    config = load_config(servers="x:1", namespace="n")

    assert config.schedulers == want, f"{name}: kept through the overrides"


def test_cluster_uid(home: Path) -> None:
    write_home_config(home, "servers: [a:1]\ncluster-uid: 3f2a9c1e5b7d4a60\n")
    assert load_config(servers="b:2").cluster_uid == "3f2a9c1e5b7d4a60"
    write_home_config(home, "cluster-uid: [x]\n")
    with pytest.raises(ConfigError, match="cluster-uid: must be a string"):
        load_config()


def test_bad_schedulers(home: Path) -> None:
    write_home_config(home, "schedulers: ['a:x']\n")

    with pytest.raises(ConfigError, match=r'schedulers\[0\]: "a:x" is not of the form host:port'):
        load_config()
