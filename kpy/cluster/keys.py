"""The encryption key file of a local cluster: what `kpy up` makes so that
Secrets are encrypted at rest from the first write.

`ensure_config` writes `encryption-config.yaml` in the cluster directory
(mode 0600: it holds the keys) the first time, an EncryptionConfiguration
sealing Secrets with one new AES-GCM key and reading plaintext too
(identity), and keeps the file a later `kpy up` finds, so that a config
the user extended (say, to encrypt ConfigMaps as well) or a key rotated
by `kpy rotate-encryption-key` stays. Every API server gets it as
`--encryption-provider-config`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kpy.storage.encryption import ConfigError, Key, load_config, render_config, write_private

if TYPE_CHECKING:
    from pathlib import Path

KEY_FILE = "encryption-config.yaml"


class KeyFileError(RuntimeError):
    """The cluster's key file is unusable; the message says what to do."""


def config_path(directory: Path) -> Path:
    return directory / KEY_FILE


def ensure_config(directory: Path) -> Path:
    """The cluster's encryption config, written with a new key if absent;
    KeyFileError when the file there is refused (naming the field)."""
    path = config_path(directory)
    if not path.exists():
        directory.mkdir(parents=True, exist_ok=True)
        write_private(path, render_config([Key.generate("key1")]))
        return path
    try:
        load_config(path)
    except ConfigError as e:
        raise KeyFileError(
            f"{e}; fix it, or remove {path} and `kpy up` writes a new one "
            "(only for a new cluster: the old key is then gone)"
        ) from None
    return path
