"""The user's settings for the TUI, kept between sessions in a small JSON file in the user's config
folder: $XDG_CONFIG_HOME/dmf-tui/config.json, else ~/.config/dmf-tui/config.json. (JSON rather than
TOML: the standard library reads TOML only from Python 3.11 and writes it not at all, and the
project supports 3.10.)

Today it holds the chosen theme. The TUI writes the file itself when a setting changes; a file that
cannot be used is reported (ConfigError, one line) and the defaults are used, never a crash.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path


class ConfigError(Exception):
    """The config file exists but cannot be used: unreadable, not JSON, or a setting of the wrong type."""


@dataclass(frozen=True)
class Settings:
    theme: str | None = None  # a Textual theme's name; None: Textual's default


def config_path() -> Path:
    # The XDG spec says a relative XDG_CONFIG_HOME is to be ignored.
    base = os.environ.get("XDG_CONFIG_HOME", "")
    root = Path(base) if os.path.isabs(base) else Path.home() / ".config"
    return root / "dmf-tui" / "config.json"


def load(path: Path | None = None) -> Settings:
    """The settings in the file; the defaults when there is no file yet."""
    path = path or config_path()
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        return Settings()
    # Not JSON, or not UTF-8: both are ValueErrors.
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f'{path}: expected an object such as {{"theme": "nord"}}')
    theme = data.get("theme")
    if theme is not None and not isinstance(theme, str):
        raise ConfigError(f'{path}: theme must be a name in quotes, e.g. "theme": "nord"')
    return Settings(theme=theme)


def save(settings: Settings, path: Path | None = None) -> None:
    """Write the settings. The new file replaces the old one whole (written beside it, then
    renamed), so a crash midway never leaves half a file to be read next time."""
    path = path or config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".new")
    partial.write_text(json.dumps(asdict(settings), indent=2) + "\n", encoding="utf-8")
    os.replace(partial, path)
