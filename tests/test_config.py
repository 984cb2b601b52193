"""The one config source: defaults, YAML overrides, key=value overrides, unknown keys fail."""

import pytest
import yaml

from thermal_action.config import (
    Config,
    ConfigError,
    config_to_dict,
    load_config,
    parse_override,
    save_config,
)


def test_defaults_are_typed_and_complete():
    cfg = load_config()
    assert isinstance(cfg, Config)
    assert cfg.data.num_frames == 64
    assert cfg.data.fixed_range == (5.0, 45.0)
    assert cfg.eval.iou_threshold == 0.5


def test_yaml_then_overrides(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump({"data": {"scale": 2, "batch_size": 4}, "optim": {"lr": 0.01}}))
    cfg = load_config(path, ["optim.lr=3e-4", "data.fixed_range=[0, 40]", "model.variant=slowfast_r50_4x16"])
    assert cfg.data.scale == 2.0 and isinstance(cfg.data.scale, float)
    assert cfg.data.batch_size == 4
    assert cfg.optim.lr == pytest.approx(3e-4)
    assert cfg.data.fixed_range == (0.0, 40.0)
    assert cfg.model.variant == "slowfast_r50_4x16"


def test_unknown_key_suggests_the_closest(tmp_path):
    with pytest.raises(ConfigError, match="did you mean 'optim.lr'"):
        load_config(None, ["optim.lrr=0.1"])
    path = tmp_path / "bad.yaml"
    path.write_text("data:\n  batch_sise: 3\n")
    with pytest.raises(ConfigError, match=r"bad.yaml.*'data.batch_sise'.*data.batch_size"):
        load_config(path)


@pytest.mark.parametrize(
    "override, message",
    [
        ("data.batch_size=2.5", "expects an integer"),
        ("data.augment=maybe", "expects true/false"),
        ("optim.lr=fast", "expects a number"),
        ("data.fixed_range=[1, 2, 3]", "expects 2 values"),
        ("data=3", "is a section"),
        ("nonsense", "key=value"),
    ],
)
def test_bad_values_are_errors(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "broken.yaml"
    bad.write_text("data: [unclosed\n")
    with pytest.raises(ConfigError, match="broken.yaml: not valid YAML"):
        load_config(bad)


def test_saved_config_round_trips(tmp_path):
    cfg = load_config(None, ["seed=7", "data.root=/tmp/x", "optim.step_milestones=[3, 5]"])
    path = save_config(cfg, tmp_path / "run" / "config.yaml")
    again = load_config(path)
    assert again == cfg
    assert config_to_dict(again)["optim"]["step_milestones"] == [3, 5]


def test_override_values_parse_as_yaml():
    assert parse_override("a.b=[1, 2]") == ("a.b", [1, 2])
    assert parse_override("a=true") == ("a", True)
    assert parse_override("a=some/path.yaml") == ("a", "some/path.yaml")


def test_every_config_field_is_read_somewhere():
    """A key nothing reads would be accepted and silently ignored: every field of every
    section must be read somewhere in the package outside config.py, as an attribute of
    its section (``cfg.eval.plots``) or of a config object (``cfg.plots``, ``eval_cfg.plots``,
    ``p.plots`` for a section held in a short local)."""
    import ast
    import dataclasses
    import typing
    from pathlib import Path

    import thermal_action
    from thermal_action.config import Config

    src = Path(thermal_action.__file__).parent
    reads: set[tuple[str, str]] = set()  # (what the attribute is read from, attribute)
    for path in src.rglob("*.py"):
        if path.name == "config.py" and path.parent == src:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load):
                v = node.value
                base = v.attr if isinstance(v, ast.Attribute) else v.id if isinstance(v, ast.Name) else ""
                reads.add((base, node.attr))

    def is_read(section: str, name: str) -> bool:
        return any(attr == name and (base == section or "cfg" in base or "config" in base or base in ("p", section[0]))
                   for base, attr in reads)

    hints = typing.get_type_hints(Config)
    unread = [f"{f.name}.{g.name}" for f in dataclasses.fields(Config) if dataclasses.is_dataclass(hints[f.name])
              for g in dataclasses.fields(hints[f.name]) if not is_read(f.name, g.name)]
    assert unread == []
