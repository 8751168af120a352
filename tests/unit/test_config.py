"""cloudd.config: the sample config.toml, error reporting and precedence.

Precedence, lowest first: model defaults, the TOML file, CLOUDD_SECTION__KEY
environment variables, then command-line flags.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from pydantic import BaseModel

from cloudd import cli
from cloudd import config as config_mod
from cloudd.config import Config, ConfigError, load

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "config.toml"


def clean_env() -> dict[str, str]:
    """The process environment without any CLOUDD_ setting leaking in."""
    return {k: v for k, v in os.environ.items() if not k.startswith("CLOUDD_")}


def write(tmp_path: Path, text: str, name: str = "cloudd.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    full_env = clean_env()
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "cloudd", *args], capture_output=True,
                          text=True, env=full_env, timeout=60, cwd=ROOT)


# --- (a) the sample and the models agree ----------------------------------------

def model_options(model: type[BaseModel], prefix: str = "") -> dict[str, object]:
    """Every leaf option of a model, as dotted name -> default, recursively."""
    out: dict[str, object] = {}
    for name, field in model.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            out.update(model_options(ann, f"{prefix}{name}."))
        else:
            out[f"{prefix}{name}"] = field.get_default(call_default_factory=True)
    return out


def toml_options(data: dict, prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    for name, value in data.items():
        if isinstance(value, dict):
            out.update(toml_options(value, f"{prefix}{name}."))
        else:
            out[f"{prefix}{name}"] = value
    return out


def test_sample_documents_every_model_option_with_its_default():
    sample = toml_options(tomllib.loads(SAMPLE.read_text()))
    models = model_options(Config)
    assert models, "no options found in the models"
    missing = sorted(set(models) - set(sample))
    assert not missing, f"options missing from config.toml: {missing}"
    for key, default in models.items():
        value = sample[key]
        assert (type(value), value) == (type(default), default), (
            f"config.toml has {key} = {value!r}; the model's default is {default!r}")


def test_sample_has_no_option_the_models_lack():
    sample = toml_options(tomllib.loads(SAMPLE.read_text()))
    extra = sorted(set(sample) - set(model_options(Config)))
    assert not extra, f"config.toml documents options cloudd does not know: {extra}"


def test_sample_loads_to_the_defaults():
    assert load(SAMPLE, environ={}) == Config()


# --- (b) a bad file stops loading, naming the key and the file ------------------

@pytest.mark.parametrize("text, key", [
    ('[server]\nlisen = "0.0.0.0:8800"\n', "server.lisen"),
    ('[server]\nmax_body_bytes = "lots"\n', "server.max_body_bytes"),
    ("[database]\npool_size = 0\n", "database.pool_size"),
    ('[identity]\npassword_hash_rounds = "12"\n[runtime]\nsync_cast = "maybe"\n',
     "runtime.sync_cast"),
    ('[server]\nlog_level = "verbose"\n', "server.log_level"),
    ("[serverr]\nlisten = \"127.0.0.1:1\"\n", "serverr"),
])
def test_bad_file_names_key_and_path(tmp_path, text, key):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as exc:
        load(path, environ={})
    message = str(exc.value)
    assert key in message
    assert str(path) in message


def test_unknown_key_is_called_unknown(tmp_path):
    path = write(tmp_path, '[server]\nlisen = "0.0.0.0:8800"\n')
    with pytest.raises(ConfigError, match=r"server\.lisen: unknown option"):
        load(path, environ={})


def test_bad_listen_value_in_file_names_key_and_path(tmp_path):
    # load() promises to "raise ConfigError naming the bad key and source".
    path = write(tmp_path, '[server]\nlisten = "localhost"\n')
    with pytest.raises(ConfigError) as exc:
        load(path, environ={})
    assert "server.listen" in str(exc.value)
    assert str(path) in str(exc.value)


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load(tmp_path / "nope.toml", environ={})
    bad = write(tmp_path, "[server\nlisten = 1\n")
    with pytest.raises(ConfigError, match="not valid TOML") as exc:
        load(bad, environ={})
    assert str(bad) in str(exc.value)


@pytest.mark.parametrize("text, key", [
    ('[server]\nlisen = "0.0.0.0:8800"\n', "server.lisen"),
    ('[server]\nmax_body_bytes = "lots"\n', "server.max_body_bytes"),
])
def test_cli_bad_config_exits_2_without_traceback(tmp_path, text, key):
    path = write(tmp_path, text)
    res = run_cli("--config", str(path), "serve")
    assert res.returncode == 2, res.stderr
    assert key in res.stderr
    assert str(path) in res.stderr
    assert "Traceback" not in res.stderr + res.stdout
    assert res.stderr.startswith("cloudd: ")


# --- (c) the environment overrides the file --------------------------------------

def test_env_overrides_file(tmp_path):
    path = write(tmp_path, '[server]\nlisten = "127.0.0.1:1111"\nregion = "FileRegion"\n'
                           "[database]\npool_size = 7\n")
    cfg = load(path, environ={"CLOUDD_SERVER__LISTEN": "0.0.0.0:2222",
                              "CLOUDD_DATABASE__POOL_SIZE": "9",
                              "CLOUDD_RUNTIME__SYNC_CAST": "true",
                              "CLOUDD_IDENTITY__TOKEN_CACHE_SECONDS": "0.5",
                              "CLOUDD_UNRELATED": "ignored", "HOME": "/root"})
    assert cfg.server.listen == "0.0.0.0:2222"
    assert cfg.server.region == "FileRegion"       # not overridden: file value kept
    assert cfg.database.pool_size == 9
    assert cfg.runtime.sync_cast is True
    assert cfg.identity.token_cache_seconds == 0.5


def test_env_names_are_case_insensitive_after_prefix():
    cfg = load(None, environ={"CLOUDD_Server__Region": "Lab"})
    assert cfg.server.region == "Lab"


@pytest.mark.parametrize("name, value, key", [
    ("CLOUDD_DATABASE__POOL_SIZE", "many", "database.pool_size"),
    ("CLOUDD_SERVER__LISEN", "0.0.0.0:1", "server.lisen"),
    ("CLOUDD_SERVER__LOG_LEVEL", "loud", "server.log_level"),
    ("CLOUDD_NOSUCH__KEY", "1", "nosuch"),
])
def test_bad_env_names_environment_and_key(tmp_path, name, value, key):
    path = write(tmp_path, "[server]\n")
    with pytest.raises(ConfigError) as exc:
        load(path, environ={name: value})
    message = str(exc.value)
    assert "environment" in message
    assert key in message
    assert str(path) not in message     # the file is fine; blame the environment


def test_cli_bad_env_exits_2(tmp_path):
    res = run_cli("--data-dir", str(tmp_path), "db", "status",
                  env={"CLOUDD_DATABASE__POOL_SIZE": "many"})
    assert res.returncode == 2
    assert "environment" in res.stderr and "database.pool_size" in res.stderr
    assert "Traceback" not in res.stderr


# --- (d) command-line flags beat the environment and the file --------------------

def test_overrides_beat_env_and_file(tmp_path):
    path = write(tmp_path, '[server]\nlisten = "127.0.0.1:1111"\ndata_dir = "/from/file"\n')
    env = {"CLOUDD_SERVER__LISTEN": "127.0.0.1:2222", "CLOUDD_SERVER__DATA_DIR": "/from/env"}
    cfg = load(path, environ=env,
               overrides={"server": {"listen": "127.0.0.1:3333", "data_dir": str(tmp_path)}})
    assert cfg.server.listen == "127.0.0.1:3333"
    assert cfg.data_dir == tmp_path


def test_cli_flags_beat_env_and_file(tmp_path, monkeypatch):
    path = write(tmp_path, '[server]\nlisten = "127.0.0.1:1111"\ndata_dir = "/from/file"\n')
    monkeypatch.setenv("CLOUDD_SERVER__LISTEN", "127.0.0.1:2222")
    monkeypatch.setenv("CLOUDD_SERVER__DATA_DIR", "/from/env")
    args = cli._parser().parse_args(["--config", str(path), "--data-dir", str(tmp_path),
                                     "serve", "--listen", "127.0.0.1:3333"])
    cfg = cli._load(args)
    assert cfg.server.listen == "127.0.0.1:3333"
    assert cfg.data_dir == tmp_path
    # Without the flags the environment wins over the file.
    cfg = cli._load(cli._parser().parse_args(["--config", str(path), "serve"]))
    assert cfg.server.listen == "127.0.0.1:2222"
    assert cfg.data_dir == Path("/from/env")


def test_cli_bad_listen_flag_is_a_clean_error(tmp_path):
    res = run_cli("--data-dir", str(tmp_path), "serve", "--listen", "nowhere")
    assert res.returncode == 2
    assert "nowhere" in res.stderr and "Traceback" not in res.stderr


# --- (e) derived values ------------------------------------------------------------

@pytest.mark.parametrize("listen, public_url, expected", [
    ("127.0.0.1:8800", "", "http://127.0.0.1:8800"),
    ("0.0.0.0:8800", "", "http://127.0.0.1:8800"),
    ("[::]:9000", "", "http://127.0.0.1:9000"),
    ("[::1]:9000", "", "http://[::1]:9000"),
    ("cloud.lan:80", "", "http://cloud.lan:80"),
    ("0.0.0.0:8800", "https://cloud.example.org/", "https://cloud.example.org"),
    ("0.0.0.0:8800", "https://cloud.example.org/os", "https://cloud.example.org/os"),
])
def test_public_url(listen, public_url, expected):
    cfg = load(None, environ={}, overrides={"server": {"listen": listen,
                                                        "public_url": public_url}})
    assert cfg.public_url == expected


def test_default_data_dir_as_root(monkeypatch):
    monkeypatch.setattr(config_mod.os, "geteuid", lambda: 0)
    cfg = load(None, environ={})
    assert cfg.data_dir == Path("/var/lib/cloudd")
    assert cfg.database_url == "sqlite+aiosqlite:////var/lib/cloudd/cloudd.db"


def test_default_data_dir_as_user(monkeypatch, tmp_path):
    monkeypatch.setattr(config_mod.os, "geteuid", lambda: 1000)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    assert load(None, environ={}).data_dir == tmp_path / "home/.local/share/cloudd"
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert load(None, environ={}).data_dir == tmp_path / "xdg/cloudd"


def test_explicit_data_dir_and_database_url(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    cfg = load(None, environ={"CLOUDD_SERVER__DATA_DIR": "~/clouddata"})
    assert cfg.data_dir == tmp_path / "clouddata"
    assert cfg.database_url == f"sqlite+aiosqlite:///{tmp_path}/clouddata/cloudd.db"
    url = "postgresql+asyncpg://cloudd@db.lan/cloudd"
    assert load(None, environ={"CLOUDD_DATABASE__URL": url}).database_url == url
