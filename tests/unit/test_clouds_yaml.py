"""The admin's clouds.yaml: written without PyYAML, read back by PyYAML as openstacksdk does."""

import stat

import yaml

from cloudd.config import Config
from cloudd.services.identity import bootstrap


def _cfg(tmp_path, listen="127.0.0.1:5000") -> Config:
    return Config.model_validate({"server": {"data_dir": str(tmp_path), "listen": listen}})


def test_written_file_reads_back_with_any_password(tmp_path):
    password = 'a"b: c\\d #e \' {x} - y'
    path = bootstrap.write_clouds_yaml(_cfg(tmp_path), password)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    cloud = yaml.safe_load(path.read_text())["clouds"]["cloudd"]
    assert cloud["auth"]["password"] == password
    assert cloud["auth"]["auth_url"] == "http://127.0.0.1:5000/identity"
    assert cloud["identity_api_version"] == 3


def test_refresh_follows_a_new_listen_address_and_keeps_the_password(tmp_path):
    bootstrap.write_clouds_yaml(_cfg(tmp_path), "secret")
    bootstrap.refresh_clouds_yaml(_cfg(tmp_path, "127.0.0.1:6001"))
    auth = yaml.safe_load((tmp_path / "clouds.yaml").read_text())["clouds"]["cloudd"]["auth"]
    assert auth["auth_url"] == "http://127.0.0.1:6001/identity"
    assert auth["password"] == "secret"
