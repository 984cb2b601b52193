"""The one config source: defaults, YAML overrides, key=value overrides, unknown keys fail."""

import pytest
import yaml

from thermal_action.config import (
    Config,
    ConfigError,
    config_to_dict,
    load_config,
    parse_override,
    replace_values,
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


def test_a_shipped_config_is_named_and_a_file_of_that_name_wins(tmp_path, monkeypatch):
    from thermal_action import configs

    assert {"cpu_default", "cpu_fast", "slowfast_r50_4x16"} <= set(configs.names())
    shipped = load_config("cpu_default")
    assert load_config("cpu_default.yaml") == shipped and shipped.model.variant == "crop_cnn"
    assert shipped == load_config(configs.find("cpu_default"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cpu_default").write_text("seed: 5\n")  # a path that exists is a path
    assert load_config("cpu_default").seed == 5
    with pytest.raises(ConfigError, match=r"cpu_defalt; did you mean --config cpu_default\? "
                       r"\(shipped configs, by name: cpu_default, cpu_fast,"):
        load_config("cpu_defalt")
    # The checkout's configs/ folder moved into the package: its old path is named, not guessed.
    with pytest.raises(ConfigError, match=r"not found: configs/cpu_fast.yaml; did you mean --config cpu_fast\?"):
        load_config("configs/cpu_fast.yaml")


def test_shipped_names_are_only_training_configs(tmp_path):
    from thermal_action.serve.config import ServeConfig

    with pytest.raises(ConfigError, match=r"^config file not found: cpu_default$"):
        load_config("cpu_default", cls=ServeConfig)


def test_saved_config_round_trips(tmp_path):
    cfg = load_config(None, ["seed=7", "data.root=/tmp/x", "optim.step_milestones=[3, 5]"])
    path = save_config(cfg, tmp_path / "run" / "config.yaml")
    again = load_config(path)
    assert again == cfg
    assert config_to_dict(again)["optim"]["step_milestones"] == [3, 5]


@pytest.mark.parametrize("section", ["", "data", "model", "optim", "trainer", "eval", "pretrain"])
def test_a_loaded_config_is_frozen_and_replace_values_makes_a_checked_copy(section):
    import dataclasses

    cfg = load_config(None, ["optim.epochs=3"])
    target = getattr(cfg, section) if section else cfg
    name = dataclasses.fields(target)[0].name
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(target, name, getattr(target, name))
    changed = replace_values(cfg, {"optim.epochs": 5, "data.scale": 2})
    assert (changed.optim.epochs, changed.data.scale, cfg.optim.epochs, cfg.data.scale) == (5, 2.0, 3, 1.0)
    assert changed.model is cfg.model  # untouched sections are shared, not copied
    with pytest.raises(ConfigError, match="did you mean 'optim.epochs'"):
        replace_values(cfg, {"optim.epoch": 5})
    with pytest.raises(ConfigError, match="out of range"):
        replace_values(cfg, {"optim.epochs": 0})



def test_the_service_config_is_frozen_too_and_replace_values_makes_a_checked_copy():
    import dataclasses

    from thermal_action.serve.config import load_serve_config

    cfg = load_serve_config(None, ["port=0"])
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.silent_seconds = 1.0
    changed = replace_values(cfg, {"silent_seconds": 1.0, "end_stream_seconds": 2.0})
    assert (changed.silent_seconds, changed.end_stream_seconds, changed.port) == (1.0, 2.0, 0)
    assert cfg.silent_seconds != 1.0
    with pytest.raises(ConfigError, match="out of range"):
        replace_values(cfg, {"port": 70_000})

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


# --- ranges: every number has one, declared beside its default, and it is enforced ------


def _numeric_fields():
    """(key, field, is_int, is_tuple) for every int/float field of every section (and the
    ``Any`` fields whose default is a number)."""
    import dataclasses
    import typing
    from typing import Any

    def walk(cls, prefix):
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            tp = hints[f.name]
            if dataclasses.is_dataclass(tp):
                yield from walk(tp, prefix + f.name + ".")
                continue
            args = [a for a in typing.get_args(tp) if a is not type(None) and a is not Ellipsis]
            origin = typing.get_origin(tp)
            if tp in (int, float) or (origin is not None and args and all(a in (int, float) for a in args)):
                yield prefix + f.name, f, (args or [tp])[0] is int, origin is tuple
            elif tp is Any and isinstance(f.default, (int, float)) and not isinstance(f.default, bool):
                yield prefix + f.name, f, isinstance(f.default, int), False

    return list(walk(Config, ""))


def _outside(rng, is_int):
    """Values just outside the range (and, with choices, one inside the bounds but not a choice)."""
    step = 1 if is_int else 0.5
    out = []
    if rng.low is not None:
        out.append(rng.low if rng.low_open else rng.low - step)
    if rng.high is not None:
        out.append(rng.high if rng.high_open else rng.high + step)
    if rng.choices is not None:
        out += [v for v in range(int(rng.low), int(rng.high) + 1) if v not in rng.choices][:1]
    return [int(v) if is_int else float(v) for v in out if v not in rng.also]


def test_every_numeric_field_declares_a_range_and_it_is_enforced():
    from thermal_action.config import Range

    fields = _numeric_fields()
    assert len(fields) > 50  # the walk found the numbers (int, float, optional, tuples, Any)
    keys = {k for k, *_ in fields}
    assert {"optim.epochs", "optim.lr", "data.batch_size", "data.fixed_range", "eval.fall_threshold",
            "trainer.limit_train_batches", "seed"} <= keys
    defaults = Config()
    for key, f, is_int, is_tuple in fields:
        rng = f.metadata.get("range")
        assert isinstance(rng, Range), f"{key} declares no range"
        assert rng.low is not None or rng.high is not None or rng.choices is not None, f"{key}: unbounded range"
        section, _, name = key.rpartition(".")
        default = getattr(getattr(defaults, section) if section else defaults, name)
        cases = [(rng, is_int)] + ([(rng.int_range, True)] if rng.int_range is not None else [])
        for r, as_int in cases:
            bad_values = _outside(r, as_int)
            assert bad_values, f"{key}: no value outside {r}"
            for bad in bad_values:
                text = f"[{bad}, {default[-1] + 1000}]" if is_tuple and len(default) else (
                    f"[{bad}]" if is_tuple else repr(bad))
                with pytest.raises(ConfigError, match=rf"'{key}' = .*out of range: allowed") as e:
                    load_config(None, [f"{key}={text}"])
                assert str(r) in str(e.value)


def test_out_of_range_values_name_key_range_and_source(tmp_path):
    with pytest.raises(ConfigError, match=r"command-line override 'optim.epochs=-1': .*'optim.epochs' = -1 is out "
                                          r"of range: allowed >= 1"):
        load_config(None, ["optim.epochs=-1"])
    path = tmp_path / "exp.yaml"
    path.write_text("optim:\n  lr: -0.1\n")
    with pytest.raises(ConfigError, match=r"exp\.yaml: config key 'optim.lr' = -0.1 is out of range: allowed \(0, 1\]"):
        load_config(path)
    with pytest.raises(ConfigError, match=r"'optim.step_milestones' = \[8, 6\]: the values must strictly increase"):
        load_config(None, ["optim.step_milestones=[8, 6]"])
    # Bounds themselves, where closed, are fine; so are the extra values a field allows.
    cfg = load_config(None, ["model.dropout=0", "optim.momentum=1", "trainer.devices=-1",
                             "trainer.limit_train_batches=7", "eval.fall_threshold=null"])
    assert cfg.trainer.devices == -1 and cfg.trainer.limit_train_batches == 7 and cfg.eval.fall_threshold is None


def test_an_unknown_override_is_blamed_on_the_command_line_not_the_yaml(tmp_path):
    path = tmp_path / "cpu_fast.yaml"
    path.write_text("optim:\n  lr: 0.01\n")
    with pytest.raises(ConfigError) as e:
        load_config(path, ["optim.bogus_key=1"])
    assert str(e.value).startswith("command-line override 'optim.bogus_key=1': unknown config key 'optim.bogus_key'")
    assert "cpu_fast.yaml" not in str(e.value)
    path.write_text("optim:\n  bogus_key: 1\n")
    with pytest.raises(ConfigError, match=r"cpu_fast\.yaml: unknown config key 'optim.bogus_key'"):
        load_config(path, ["optim.lr=0.1"])


@pytest.mark.parametrize("override, message", [
    ("data.scale=0.01", "'data.scale' = 0.01 is out of range"),
    ("optim.lr=inf", "'optim.lr' = inf must be a finite number"),
    ("optim.lr=nan", "'optim.lr' = nan must be a finite number"),
    ("data.num_frames=100000000", "'data.num_frames' = 100000000 is out of range"),
])
def test_values_that_would_fail_later_are_refused_naming_the_key(override, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        load_config(None, [override])
