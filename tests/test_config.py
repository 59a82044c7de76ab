"""The user's settings file (dmf_tui/config.py): where it is, what it keeps, and what it refuses."""

from __future__ import annotations

from pathlib import Path

import pytest

from dmf_tui import config


def test_the_file_is_in_xdg_config_home(user_config: Path):
    assert config.config_path() == user_config / "dmf-tui" / "config.json"


def test_without_xdg_config_home_it_is_under_the_home_folder(monkeypatch, tmp_path: Path):
    monkeypatch.setenv("HOME", str(tmp_path))
    for value in (None, "relative/config"):  # the XDG spec says a relative one is ignored
        if value is None:
            monkeypatch.delenv("XDG_CONFIG_HOME")
        else:
            monkeypatch.setenv("XDG_CONFIG_HOME", value)
        assert config.config_path() == tmp_path / ".config" / "dmf-tui" / "config.json"


def test_no_file_gives_the_defaults():
    assert config.load() == config.Settings(theme=None)


def test_saved_settings_read_back_and_replace_the_file_whole(tmp_path: Path):
    path = tmp_path / "deep" / "config.json"
    for theme in ('a "quoted" \\ theme', "nord"):
        config.save(config.Settings(theme=theme), path)
        assert config.load(path) == config.Settings(theme=theme)
    assert [p.name for p in path.parent.iterdir()] == ["config.json"]  # no partial file left


@pytest.mark.parametrize("content", [b"{theme: nord", b'["nord"]', b'{"theme": 3}', b"\xff\xfe"])
def test_a_file_that_cannot_be_used_is_one_line_naming_it(tmp_path: Path, content: bytes):
    path = tmp_path / "config.json"
    path.write_bytes(content)
    with pytest.raises(config.ConfigError) as error:
        config.load(path)
    assert str(error.value).startswith(f"{path}: ") and "\n" not in str(error.value)


def test_an_unreadable_file_is_a_config_error(tmp_path: Path):
    with pytest.raises(config.ConfigError):
        config.load(tmp_path)  # a folder where the file should be
