"""The service's data directory without a model: one service per directory, the token kept."""

from __future__ import annotations

import pytest

from thermal_action.serve.config import ServeConfig
from thermal_action.serve.service import TOKEN_ENV, DataDirInUse, DataDirLock, resolve_token, write_token


def test_a_generated_token_is_kept_and_reused_with_mode_600(tmp_path, monkeypatch):
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    cfg = ServeConfig(data_dir=str(tmp_path))
    token, source = resolve_token(cfg, tmp_path)
    assert source == "generated" and len(token) >= 20
    (tmp_path / "token.tmp").write_text("stale")
    (tmp_path / "token.tmp").chmod(0o644)
    write_token(tmp_path / "token", token)
    assert (tmp_path / "token").stat().st_mode & 0o777 == 0o600 and not (tmp_path / "token.tmp").exists()
    assert resolve_token(cfg, tmp_path) == (token, "token file")
    monkeypatch.setenv(TOKEN_ENV, "from-env")
    assert resolve_token(cfg, tmp_path) == ("from-env", TOKEN_ENV)
    assert resolve_token(ServeConfig(token="from-config"), tmp_path) == ("from-config", "config")


def test_one_lock_per_data_dir_released_on_release(tmp_path):
    first = DataDirLock(tmp_path)
    with pytest.raises(DataDirInUse, match=r"in use by another thermal-action serve \(pid \d+\)"):
        DataDirLock(tmp_path)
    first.release()
    DataDirLock(tmp_path).release()
