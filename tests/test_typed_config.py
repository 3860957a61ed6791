"""Typed configs (anisora.typed_config): pydantic models, one-line errors naming the key, `--set` overrides,
JSON Schemas for editors, and every shipped config file loading through its model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import pytest
import yaml
from pydantic import Field, ValidationError

from anisora.cli import main
from anisora.curate.captions import CAPTIONERS
from anisora.curate.config import CAPTIONER_NAMES, CurateConfig, config_schema, load_config
from anisora.curate.scorers.motion import _PRESETS, MotionConfig
from anisora.errors import InputError
from anisora.evaluate.cases import bench_schema, load_bench
from anisora.train.config import TrainConfig, load_train_config
from anisora.train.config import config_schema as train_schema
from anisora.typed_config import POSITIVE, SHARE, Config, apply_settings, parse_setting

REPO = Path(__file__).resolve().parents[1]
TRAIN_CONFIGS = sorted((REPO / "configs" / "train").rglob("*.yaml"))


class Inner(Config):
    share: Annotated[float, SHARE] = 0.5


class Example(Config):
    flag: bool = False
    count: Annotated[int, Field(ge=1, le=10)] = 1
    rate: Annotated[float, POSITIVE] | None = None
    name: str = "x"
    mode: Literal["a", "b"] = "a"
    sizes: list[Annotated[list[int], Field(min_length=2, max_length=2)]] = Field(default_factory=list)
    options: dict[str, Any] = Field(default_factory=dict)
    inner: Inner = Inner()


def test_values_that_fit_are_kept():
    values = {
        "flag": True,
        "count": 10,
        "rate": 2,
        "name": "y",
        "mode": "b",
        "sizes": [[4, 3]],
        "options": {"k": [1]},
        "inner": {"share": 1},
    }
    built = Example.load(values)
    assert built.model_dump() == {**values, "rate": 2.0, "inner": {"share": 1.0}}
    assert isinstance(built.rate, float)  # a whole number is a fine decimal, and becomes one
    assert Example.load(None) == Example() == Example.load({"rate": None})
    with pytest.raises(ValidationError):  # frozen
        built.count = 3


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"flag": 1}, "flag: expected true or false, got 1"),
        ({"count": True}, "count: expected an integer, got True"),
        ({"count": "5"}, "count: expected an integer, got '5'"),
        ({"count": 2.0}, "count: expected an integer, got 2.0"),
        ({"count": 11}, "count: must be <= 10, got 11"),
        ({"rate": 0}, "rate: must be > 0, got 0"),
        ({"rate": "high"}, "rate: expected a number, got 'high'"),
        ({"rate": float("nan")}, "rate: expected a finite number, got nan"),
        ({"rate": "1e-3"}, "write 2.0e-4, not 2e-4"),
        ({"name": 5}, "name: expected text, got 5"),
        ({"name": None}, "name: expected text, got None"),
        ({"mode": "c"}, "mode: expected one of 'a' or 'b', got 'c'"),
        ({"sizes": [[1, 2, 3]]}, "sizes[0]: expected at most 2 values, got 3"),
        ({"sizes": [[1, "two"]]}, "sizes[0][1]: expected an integer, got 'two'"),
        ({"sizes": "p"}, "sizes: expected a list, got 'p'"),
        ({"options": [1]}, "options: expected a mapping, got list"),
        ({"inner": {"share": 2}}, "inner.share: must be <= 1, got 2"),
        ({"inner": {"shares": 1}}, "inner.shares: unknown key (did you mean share?); known: share"),
        ({"colour": 1}, "colour: unknown key; known: flag, count, rate, name, mode, sizes, options, inner"),
        ({"count": 0, "mode": "c"}, "count: must be >= 1, got 0; mode: expected one of 'a' or 'b', got 'c'"),
        ([1], "expected a mapping, got list"),
    ],
)
def test_values_that_do_not_fit_are_one_line_errors(values, message):
    with pytest.raises(InputError) as caught:
        Example.load(values, source="my.yaml")
    assert str(caught.value).startswith("my.yaml: ") and message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_section_name_prefixes_the_keys():
    with pytest.raises(InputError, match=r"^scorers\.x\.inner\.share: must be <= 1, got 3$"):
        Example.load({"inner": {"share": 3}}, "scorers.x")


@pytest.mark.parametrize(
    ("text", "setting"),
    [
        ("filters.min_motion=0.5", (("filters", "min_motion"), 0.5)),
        ("scenes.detector=content", (("scenes", "detector"), "content")),
        ("data.resolutions=[[80, 48]]", (("data", "resolutions"), [[80, 48]])),
        ("init.model=", (("init", "model"), None)),
        ("overlap=false", (("overlap",), False)),
        ("name=a=b", (("name",), "a=b")),
    ],
)
def test_settings_are_key_paths_and_yaml_values(text, setting):
    assert parse_setting(text) == setting


@pytest.mark.parametrize("text", ["filters.min_motion", "=1", "a..b=1", "a=[1,"])
def test_malformed_settings_are_one_line(text):
    with pytest.raises(InputError) as caught:
        parse_setting(text)
    assert "\n" not in str(caught.value) and "--set" in str(caught.value)


def test_settings_apply_over_the_file_and_start_missing_sections_from_the_defaults():
    defaults = {"scorers": {"motion": {}, "text": {}}, "filters": {"a": 1, "b": 2}, "flag": True}
    values = {"filters": {"a": 5}}
    settings = [(("filters", "b"), 3), (("scorers", "motion", "max_pairs"), 2), (("new", "key"), 1)]
    result = apply_settings(values, settings, defaults)
    assert result == {
        "filters": {"a": 5, "b": 3},
        "scorers": {"motion": {"max_pairs": 2}, "text": {}},
        "new": {"key": 1},
    }
    assert values == {"filters": {"a": 5}}  # the caller's mapping is left alone
    with pytest.raises(InputError, match=r"--set filters\.a\.b: filters\.a is a value, not a section"):
        apply_settings(values, [(("filters", "a", "b"), 1)], defaults)


def test_curate_settings_are_checked_like_the_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("filters: {min_motion: 3.0}\nscorers: {motion: {}, text: {}}\n", encoding="utf-8")
    settings = [parse_setting(t) for t in ("scenes.detector=content", "scorers.motion.max_pairs=2")]
    config = load_config(path, settings=settings)
    assert (config.scenes.detector, config.filters.min_motion) == ("content", 3.0)
    assert config.scorers == {"motion": {"max_pairs": 2}, "text": {}}
    added = load_config(None, settings=[parse_setting("scorers.aesthetic.frames=2")]).scorers
    assert added == {**CurateConfig().scorers, "aesthetic": {"frames": 2}}
    with pytest.raises(InputError, match=r"c\.yaml: scenes\.detector: expected one of .*, got 'adaptve'"):
        load_config(path, settings=[parse_setting("scenes.detector=adaptve")])
    with pytest.raises(InputError, match=r"filters\.min_motoin: unknown key \(did you mean min_motion\?\)"):
        load_config(path, settings=[parse_setting("filters.min_motoin=1")])
    with pytest.raises(InputError, match=r"scorers\.motion\.max_pairs: expected an integer, got 'many'"):
        load_config(path, settings=[parse_setting("scorers.motion.max_pairs=many")])


def test_choices_match_the_registries():
    assert set(get_args(CAPTIONER_NAMES)) == set(CAPTIONERS)
    assert set(get_args(MotionConfig.model_fields["preset"].annotation)) == set(_PRESETS)


def test_every_shipped_config_loads_through_its_model():
    assert load_config(REPO / "configs" / "curate.yaml") == CurateConfig()
    assert len(TRAIN_CONFIGS) >= 8
    for path in TRAIN_CONFIGS:
        config = load_train_config(path)
        assert config.name and config.optim.steps >= 1, path


def test_schemas_validate_the_defaults_and_the_shipped_configs():
    jsonschema = pytest.importorskip("jsonschema")
    curate, train = config_schema(), train_schema()
    for schema in (curate, train):
        jsonschema.Draft202012Validator.check_schema(schema)
    curate_validator = jsonschema.Draft202012Validator(curate)
    curate_validator.validate(yaml.safe_load((REPO / "configs" / "curate.yaml").read_text(encoding="utf-8")))
    curate_validator.validate(CurateConfig().model_dump(mode="json"))
    for path in TRAIN_CONFIGS:
        jsonschema.validate(yaml.safe_load(path.read_text(encoding="utf-8")), train)
    jsonschema.validate(TrainConfig().model_dump(mode="json"), train)
    # what the models refuse, the schema flags too (so an editor marks it while typing)
    bad = {"scenes": {"detector": "adaptve"}, "filters": {"min_motion": "high", "min_motoin": 1}}
    assert len(list(curate_validator.iter_errors(bad))) == 3
    assert not curate_validator.is_valid({"scorers": {"motion": {"max_pairs": 0}}})
    assert not curate_validator.is_valid({"scorers": {"motoin": {}}})
    assert not jsonschema.Draft202012Validator(train).is_valid({"data": {"resolutions": [[80, 50]]}})


def test_schemas_name_the_choices_and_describe_the_keys():
    curate = config_schema()
    scenes = curate["$defs"]["SceneConfig"]["properties"]
    assert scenes["detector"]["enum"] == ["adaptive", "content", "transnetv2"]
    assert "learned" in scenes["detector"]["description"]
    assert curate["$defs"]["FilterConfig"]["additionalProperties"] is False
    assert set(curate["properties"]["scorers"]["properties"]) >= {"motion", "text", "aesthetic"}
    train = train_schema()
    assert train["$defs"]["OptimConfig"]["properties"]["schedule"]["enum"] == ["constant", "cosine"]


def test_defaults_commands_print_the_yaml_and_the_schema(capsys):
    assert main(["curate", "defaults", "--schema"]) == 0
    assert json.loads(capsys.readouterr().out) == config_schema()
    assert main(["train", "defaults", "--schema"]) == 0
    assert json.loads(capsys.readouterr().out) == train_schema()
    assert main(["train", "defaults"]) == 0
    assert TrainConfig.load(yaml.safe_load(capsys.readouterr().out)) == TrainConfig()
    assert main(["curate", "defaults"]) == 0
    assert CurateConfig.load(yaml.safe_load(capsys.readouterr().out)) == CurateConfig()


def test_a_bad_setting_on_the_cli_is_one_line_before_any_work(tmp_path, capsys):
    folder = tmp_path / "curated"
    folder.mkdir()
    (folder / "state.sqlite").touch()
    assert main(["curate", "filter", str(folder), "--set", "filters.min_motion=high"]) == 2
    error = capsys.readouterr().err.strip()
    assert error == "anisora: error: filters.min_motion: expected a number, got 'high'"
    assert not (folder / "config.yaml").exists()
    stage = TRAIN_CONFIGS[0]
    out = tmp_path / "run"
    code = main(["train", "run", "--config", str(stage), "--set", f"out={out}", "--set", "optim.lr=fast"])
    assert code == 2 and not out.exists()
    error = capsys.readouterr().err.strip()
    assert error == f"anisora: error: {stage}: optim.lr: expected a number, got 'fast'"
    assert main(["train", "run", "--config", str(stage), "--set", "optim.lr"]) == 2  # not KEY=VALUE
    assert "--set expects KEY.PATH=VALUE" in capsys.readouterr().err


def test_settings_reach_every_training_stage(tmp_path, monkeypatch, capsys):
    from anisora.train import recipe

    trained = []
    monkeypatch.setattr(recipe, "train", lambda stage, progress, minutes: trained.append(stage) or "final")
    stages = [str(p) for p in sorted((REPO / "configs" / "train" / "toonworld").glob("stage*.yaml"))]
    (tmp_path / "vae").mkdir()  # stage 1's VAE: it must exist before anything trains
    settings = ["--set", "data.batch_size=2", "--set", "optim.schedule=constant", "--steps", "3"]
    settings += ["--set", f"init.vae={tmp_path / 'vae'}"]
    assert main(["train", "run", *(a for p in stages for a in ("--config", p)), *settings, "--quiet"]) == 0
    assert len(trained) == len(stages) >= 3
    assert all((s.data.batch_size, s.optim.schedule, s.optim.steps) == (2, "constant", 3) for s in trained)


def test_the_bench_schema_matches_what_load_bench_accepts(tmp_path, capsys):
    jsonschema = pytest.importorskip("jsonschema")
    assert main(["evaluate", "schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema == bench_schema()
    validator = jsonschema.Draft202012Validator(schema)
    (tmp_path / "first.png").write_bytes(b"")
    case = {"id": "a", "prompt": "p", "guides": [{"frame": "last", "image": "first.png"}], "motion": 2}
    bench = {"name": "b", "defaults": {"frames": 17, "dim": "2D"}, "cases": [case]}
    validator.validate(bench)
    path = tmp_path / "bench.yaml"
    path.write_text(yaml.safe_dump(bench), encoding="utf-8")
    loaded = load_bench(path).cases[0]
    assert (loaded.request.frames, loaded.dim, loaded.request.motion, loaded.task) == (
        17,
        "2D",
        2.0,
        "interpolation",
    )
    for bad in (
        {"id": "../x"},
        {"task": "dance"},
        {"guides": [{"frame": "first", "image": "x"}]},
        {"seed": -1},
    ):
        assert not validator.is_valid({"cases": [{**case, **bad}]}), bad
        path.write_text(yaml.safe_dump({"cases": [{**case, **bad}]}), encoding="utf-8")
        with pytest.raises(InputError):
            load_bench(path)
    assert not validator.is_valid({"cases": [case], "defaults": {"task": "i2v"}})
