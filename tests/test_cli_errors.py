"""The command's contract for mistakes: a bad config, argument or input is exit status 2 and one line naming
the key, before any model loads; a failure while working is exit status 1; -q/-v work on every command."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

from anisora import cli
from anisora.cli import main

STAGE_ERROR = "optim:\n  lr: fast\n"


@pytest.fixture
def no_model_loads(monkeypatch):
    """Loading any model (generation, training start, metric models) fails the test."""
    from anisora.evaluate import runner
    from anisora.model import loading, weights
    from anisora.train import recipe

    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded before the input was checked")

    for module, name in (
        (weights, "load_pipeline"),
        (loading, "load_pipeline"),
        (recipe, "build_pipeline"),
        (recipe, "train"),
        (runner, "build_metrics"),
    ):
        monkeypatch.setattr(module, name, refuse)


def _curate(config: str) -> list[str]:
    return ["curate", "run", "{tmp}/in", "--out", "{tmp}/out", "--config", config, "--quiet"]


# (command with {tmp} for the test's folder, files to write, what the one error line must say)
BAD_CONFIGS = {
    "curate: wrong type": (
        _curate("{tmp}/c.yaml"),
        {"c.yaml": "filters:\n  min_motion: high\n"},
        "filters.min_motion: expected a number, got 'high'",
    ),
    "curate: unknown key": (
        _curate("{tmp}/c.yaml"),
        {"c.yaml": "filters:\n  min_motoin: 2\n"},
        "filters.min_motoin: unknown key (did you mean min_motion?)",
    ),
    "curate: not a choice": (
        _curate("{tmp}/c.yaml"),
        {"c.yaml": "scenes:\n  detector: magic\n"},
        "scenes.detector: expected one of 'adaptive', 'content' or 'transnetv2', got 'magic'",
    ),
    "curate: out of range": (
        _curate("{tmp}/c.yaml"),
        {"c.yaml": "scenes:\n  transnet_threshold: 1.5\n"},
        "scenes.transnet_threshold: must be < 1, got 1.5",
    ),
    "curate: YAML syntax": (
        _curate("{tmp}/c.yaml"),
        {"c.yaml": "filters: [unclosed\n"},
        "cannot read config {tmp}/c.yaml: line 2, column 1: while parsing a flow sequence, expected ','",
    ),
    "curate: missing file": (
        _curate("{tmp}/missing.yaml"),
        {},
        "cannot read config {tmp}/missing.yaml",
    ),
    "curate: not a mapping": (
        _curate("{tmp}/c.yaml"),
        {"c.yaml": "- filters\n- scenes\n"},
        "config {tmp}/c.yaml: expected a mapping at the top, got list",
    ),
    "train: wrong type": (
        ["train", "run", "--config", "{tmp}/stage.yaml"],
        {"stage.yaml": STAGE_ERROR},
        "{tmp}/stage.yaml: optim.lr: expected a number, got 'fast'",
    ),
    "train: --set through a value": (
        ["train", "run", "--config", "{tmp}/stage.yaml", "--set", "optim.lr.peak=0.1"],
        {"stage.yaml": "name: s\n"},
        "--set optim.lr.peak: optim.lr is a value, not a section",
    ),
    "bench: YAML syntax": (
        ["evaluate", "run", "--bench", "{tmp}/bench.yaml", "--out", "{tmp}/out"],
        {"bench.yaml": "cases:\n  - id: a\n   prompt: a cat\n"},
        "{tmp}/bench.yaml: not YAML (line 3, column 4:",
    ),
    "bench: wrong type": (
        ["evaluate", "run", "--bench", "{tmp}/bench.yaml", "--out", "{tmp}/out"],
        {"bench.yaml": "cases:\n  - id: a\n    prompt: a cat\n    frames: many\n"},
        "{tmp}/bench.yaml: case 1 (a): frames: expected an integer, got 'many'",
    ),
}


def _prepare(tmp_path, command: list[str], files: dict[str, str]) -> list[str]:
    (tmp_path / "in").mkdir()
    for name, text in files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    return [part.format(tmp=tmp_path) for part in command]


@pytest.mark.parametrize("case", list(BAD_CONFIGS))
def test_every_bad_config_is_one_line_naming_the_key_and_exit_2(case, tmp_path, capsys, no_model_loads):
    command, files, message = BAD_CONFIGS[case]
    assert main(_prepare(tmp_path, command, files)) == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and captured.err.startswith("anisora: error: "), captured.err
    assert message.format(tmp=tmp_path) in captured.err
    assert captured.out == "" and not (tmp_path / "out").exists()  # nothing written


def test_a_bad_config_in_a_real_process(tmp_path):
    command, files, message = BAD_CONFIGS["curate: unknown key"]
    run = subprocess.run(
        [sys.executable, "-m", "anisora.cli", *_prepare(tmp_path, command, files)],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 2 and run.stdout == ""
    assert run.stderr.count("\n") == 1 and message in run.stderr


def test_every_training_stage_is_checked_before_the_first_loads(tmp_path, capsys, no_model_loads):
    first = tmp_path / "first.yaml"
    first.write_text(f"name: first\nout: {tmp_path / 'first'}\ninit:\n  vae: {tmp_path}\n", encoding="utf-8")
    second = tmp_path / "second.yaml"
    second.write_text(
        f"name: second\nout: {tmp_path / 'second'}\ninit:\n  model: {tmp_path / 'first' / 'final'}\n"
        f"data:\n  source: {tmp_path / 'not-curated'}\n",
        encoding="utf-8",
    )
    assert main(["train", "run", "--config", str(first), "--config", str(second)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "stage second: " in err and "no manifest here" in err
    assert main(["train", "run", "--config", str(first), "--set", f"init.vae={tmp_path / 'none'}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"stage first: init.vae: {tmp_path / 'none'} is not a directory" in err


def test_a_bad_generation_setting_of_a_bench_run_is_refused_before_any_model(
    tmp_path, capsys, no_model_loads
):
    bench = tmp_path / "bench.yaml"
    bench.write_text("cases:\n  - id: a\n    prompt: a cat\n", encoding="utf-8")
    args = ["evaluate", "run", "--bench", str(bench), "--out", str(tmp_path / "out"), "--device", "gpu7"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown device 'gpu7'" in err


def test_argument_errors_are_one_line_with_the_command_to_ask(capsys):
    assert main(["curate", "run", "video.mp4"]) == 2
    err = capsys.readouterr().err
    assert err == (
        "anisora: error: the following arguments are required: --out (see `anisora curate run --help`)\n"
    )
    assert main(["curate", "fliter", "DIR"]) == 2
    assert "invalid choice: 'fliter'" in capsys.readouterr().err


def test_a_failure_while_working_is_exit_1_with_the_traceback_only_under_v(monkeypatch, tmp_path, capsys):
    def broken(path):
        raise RuntimeError("the disk went away\nlong details")

    monkeypatch.setattr(importlib.import_module("anisora.media.info"), "probe", broken)
    assert main(["probe", str(tmp_path / "a.mp4")]) == 1
    err = capsys.readouterr().err
    assert err == "anisora: error: RuntimeError: the disk went away (-v shows the traceback)\n"
    assert main(["probe", str(tmp_path / "a.mp4"), "-v"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("Traceback") and err.endswith("anisora: error: RuntimeError: the disk went away\n")


@pytest.mark.parametrize(
    ("argv", "quiet", "verbose"),
    [
        (["-q", "curate", "defaults"], True, 0),
        (["curate", "defaults", "--quiet"], True, 0),
        (["curate", "-v", "defaults"], False, 1),
        (["-vv", "train", "defaults"], False, 2),
        (["evaluate", "schema"], False, 0),
    ],
)
def test_quiet_and_verbose_before_or_after_the_subcommand(argv, quiet, verbose):
    args = cli.build_parser().parse_args(argv)
    assert (args.quiet, args.verbose) == (quiet, verbose)


def test_help_lists_each_command_once_without_dashed_aliases(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    listing = capsys.readouterr().out
    for alias in ("curate-filter", "curate-export", "curate-defaults", "train-defaults", "train-vae"):
        assert alias not in listing
    assert main(["-q", "-v", "probe", "x.mp4"]) == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_quiet_leaves_only_the_results(tmp_path):
    command = [sys.executable, "-m", "anisora.cli", "toonworld", "episodes", "--out", str(tmp_path)]
    command += ["--episodes", "2", "--seconds", "1", "--size", "64x48", "--fps", "8"]
    loud = subprocess.run(command, capture_output=True, text=True, check=True)
    assert "episodes: 100%" in loud.stderr  # the progress bar
    quiet = subprocess.run([*command, "-q"], capture_output=True, text=True, check=True)
    assert quiet.stderr == "" and quiet.stdout == loud.stdout
    assert len(quiet.stdout.splitlines()) == 2 and quiet.stdout.startswith(str(tmp_path))
