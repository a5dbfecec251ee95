"""Config validation: each kind of error names the key and the accepted values; the shipped config parses."""

import copy
import re

import pytest
import yaml

from mosic.config import (
    ClipsConfig,
    Config,
    ConfigError,
    config_hash,
    labelled_reference_on,
    parse_config,
    section_from_dict,
    to_dict,
    track_substep,
)


def test_shipped_config_parses(default_config_dict):
    cfg = parse_config(default_config_dict)
    assert isinstance(cfg, Config)
    assert cfg.dataset.kind == "synthetic"
    assert cfg.clips.num_frames == 12
    assert isinstance(cfg.synthetic.max_speed, float)


def test_every_key_is_commented(repo):
    """Each leaf key in config.yaml has a comment above it, or shares one with the key just above it."""
    lines = [line.strip() for line in (repo / "config.yaml").read_text().splitlines()]

    def is_leaf_key(line: str) -> bool:
        return bool(line) and not line.startswith("#") and ":" in line and line.split(":", 1)[1].strip() != ""

    leaves = [i for i, line in enumerate(lines) if is_leaf_key(line)]
    assert len(leaves) > 20
    for i in leaves:
        j = i - 1
        if is_leaf_key(lines[j]):
            j -= 1  # at most two keys share one comment
        assert lines[j].startswith("#"), f"config.yaml line {i + 1} ({lines[i]}) has no comment above it"


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (("clips", "step"), 0, "'clips.step' is 0; accepted values: an integer >= 1"),
        (("clips", "step"), "six", "'clips.step' must be an integer, got str"),
        (("clips", "step"), 2.5, "'clips.step' must be an integer, got float"),
        (
            ("clips", "mode"),
            "random",
            "'clips.mode' is 'random'; accepted values: 'regular', 'uniform', 'dense', 'full'",
        ),
        (("synthetic", "write_mp4"), "yes", "'synthetic.write_mp4' must be true or false"),
        (("synthetic", "num_classes"), 3, "'synthetic.num_classes' is 3; accepted values: an integer >= 5 and <= 6"),
        (("synthetic", "max_speed"), -1, "'synthetic.max_speed' is -1.0; accepted values: a number >= 0.0"),
        (
            ("synthetic", "shape"),
            "hexagon",
            "'synthetic.shape' is 'hexagon'; accepted values: 'random', 'disk', 'square', 'triangle', 'ellipse'",
        ),
        (("index", "threads"), True, "'index.threads' must be an integer, got bool"),
        (
            ("track", "cotracker", "batch_size"),
            0,
            "'track.cotracker.batch_size' is 0; accepted values: an integer >= 1 and <= 256",
        ),
        (("track", "cotracker", "batch_size"), 2.5, "'track.cotracker.batch_size' must be an integer, got float"),
        (("dataset",), "ytvos", "'dataset' must be a mapping"),
    ],
)
def test_wrong_type_or_range_names_key_and_accepted_values(default_config_dict, path, value, expected):
    data = copy.deepcopy(default_config_dict)
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(ConfigError, match=None) as err:
        parse_config(data)
    assert expected in str(err.value)


def test_unknown_key(default_config_dict):
    default_config_dict["clips"]["stepp"] = 3
    with pytest.raises(ConfigError) as err:
        parse_config(default_config_dict)
    assert "unknown config key 'clips.stepp'" in str(err.value)
    assert "clips.step" in str(err.value)  # lists the known keys


def test_unknown_top_level_section(default_config_dict):
    default_config_dict["trian"] = {}
    with pytest.raises(ConfigError, match="unknown config key 'trian'"):
        parse_config(default_config_dict)


def test_missing_key(default_config_dict):
    del default_config_dict["synthetic"]["noise"]
    with pytest.raises(ConfigError) as err:
        parse_config(default_config_dict)
    assert "missing config key 'synthetic.noise'" in str(err.value)
    assert "a number" in str(err.value)


def test_cotracker_batch_size_is_required_in_config_yaml(default_config_dict):
    assert parse_config(default_config_dict).track.cotracker.batch_size == 8
    del default_config_dict["track"]["cotracker"]["batch_size"]
    with pytest.raises(ConfigError, match="missing config key 'track.cotracker.batch_size'"):
        parse_config(default_config_dict)


def test_cross_field_checks(default_config_dict):
    default_config_dict["synthetic"]["min_objects"] = 5
    default_config_dict["synthetic"]["max_objects"] = 2
    with pytest.raises(ConfigError, match="'synthetic.max_objects' is 2"):
        parse_config(default_config_dict)


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"synthetic": {"turn_frames": 36}}, "'synthetic.turn_frames' is 36; accepted values: 1 to"),
        (
            {"synthetic": {"turn_travel": 40}},
            "'synthetic.turn_travel' is 40.0; accepted values: 0 to synthetic.max_speed",
        ),
        ({"track": {"tracker": "ground_truth"}, "dataset": {"kind": "davis", "root": "x"}}, "'track.tracker' is"),
    ],
)
def test_turning_and_ground_truth_cross_checks(default_config_dict, changes, expected):
    for section, values in changes.items():
        default_config_dict[section].update(values)
    with pytest.raises(ConfigError, match=re.escape(expected)):
        parse_config(default_config_dict)


def test_faces_1_and_ground_truth_on_synthetic_parse(default_config_dict):
    default_config_dict["synthetic"].update(faces=1, turn_frames=36, turn_travel=1000)  # unused without turns
    default_config_dict["track"]["tracker"] = "ground_truth"
    cfg = parse_config(default_config_dict)
    assert cfg.synthetic.faces == 1 and cfg.track.tracker == "ground_truth"


def test_real_dataset_needs_root(default_config_dict):
    default_config_dict["dataset"]["kind"] = "ytvos"
    with pytest.raises(ConfigError, match="'dataset.root' is empty"):
        parse_config(default_config_dict)


def test_int_accepted_for_float_and_config_is_frozen(default_config_dict):
    default_config_dict["synthetic"]["max_speed"] = 4  # (not below turn_travel / turn_frames = 32 / 12)
    cfg = parse_config(default_config_dict)
    assert cfg.synthetic.max_speed == 4.0 and isinstance(cfg.synthetic.max_speed, float)
    with pytest.raises(AttributeError):
        cfg.synthetic.max_speed = 3.0  # type: ignore[misc]


def test_section_round_trip_and_hash(default_config_dict):
    cfg = parse_config(default_config_dict)
    again = section_from_dict(ClipsConfig, to_dict(cfg.clips), "clips")
    assert again == cfg.clips
    assert config_hash(again) == config_hash(cfg.clips)
    changed = section_from_dict(ClipsConfig, {**to_dict(cfg.clips), "step": 4}, "clips")
    assert config_hash(changed) != config_hash(cfg.clips)


def test_per_run_keys_are_set_by_the_workflow_not_config_yaml(default_config_dict):
    default_config_dict["train"]["seed"] = 3
    with pytest.raises(ConfigError, match=r"'train.seed' is set for each training run .*runs.seeds"):
        parse_config(default_config_dict)


def test_run_spec_sets_seed_and_track_source(default_config_dict):
    from mosic.config import RunSpec, TrainConfig, run_train_config

    cfg = parse_config(default_config_dict)
    run = RunSpec(variant="shuffled", seed=7)
    assert (run.seed, run.track_source) == (7, "shuffled")
    assert RunSpec(variant="mosic", seed=1).track_source == "cached"
    # The section a training job receives round-trips; the run's seed comes beside it, never inside.
    train = run_train_config(cfg)
    assert section_from_dict(TrainConfig, to_dict(train), "train") == train
    with pytest.raises(ConfigError, match="'train.seed' is set for each training run"):
        section_from_dict(TrainConfig, {**to_dict(train), "seed": 7}, "train")
    with pytest.raises(TypeError, match="seed"):  # a run without its seed is refused
        RunSpec(variant="mosic")  # type: ignore[call-arg]
    with pytest.raises(ConfigError, match="training seed is -1; accepted values: an integer >= 0"):
        RunSpec(variant="mosic", seed=-1)
    with pytest.raises(ConfigError, match="unknown training variant 'moving'"):
        RunSpec(variant="moving", seed=0)


@pytest.mark.parametrize(
    ("runs", "message"),
    [
        ({"seeds": [], "controls": [], "labelled_steps": 0}, "'runs.seeds' must be a non-empty list"),
        ({"seeds": [0, 0], "controls": [], "labelled_steps": 0}, "'runs.seeds' lists a value twice"),
        (
            {"seeds": [0], "controls": ["frozen"], "labelled_steps": 0},
            "'runs.controls[0]' is 'frozen'; accepted values: 'shuffled'",
        ),
        ({"seeds": [0], "controls": [], "labelled_steps": -1}, "'runs.labelled_steps' is -1; accepted values"),
        ({"seeds": [0], "controls": []}, "missing config key 'runs.labelled_steps'"),
    ],
)
def test_runs_section_is_checked(default_config_dict, runs, message):
    default_config_dict["runs"] = runs
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_config(default_config_dict)


def test_runs_controls_may_be_empty(default_config_dict):
    default_config_dict["runs"] = {"seeds": [0], "controls": [], "labelled_steps": 0}
    assert parse_config(default_config_dict).runs.controls == []


@pytest.mark.parametrize(
    ("override", "on"),
    [
        ({}, True),  # the demo
        ({"train": {"init": "random"}}, False),  # nothing of its own to continue
        ({"synthetic": {"faces": 1}}, False),  # every image already shows the one face
        ({"runs": {"labelled_steps": 0}}, False),
    ],
)
def test_labelled_reference_only_where_it_applies(default_config_dict, override, on):
    for section, values in override.items():
        default_config_dict[section].update(values)
    assert labelled_reference_on(parse_config(default_config_dict)) is on


def test_pretrained_config_merges_over_the_demo(default_config_dict, repo):
    """configs/pretrained.yaml (the published setting) is valid merged over config.yaml, as --configfile does."""
    over = yaml.safe_load((repo / "configs" / "pretrained.yaml").read_text())
    merged = copy.deepcopy(default_config_dict)
    for section, values in over.items():
        for key, value in values.items():
            if isinstance(value, dict):
                merged[section][key].update(value)
            else:
                merged[section][key] = value
    cfg = parse_config(merged)
    assert cfg.train.init == "timm" and cfg.train.model == "vit_small_patch14_dinov2.lvd142m"
    assert cfg.train.input_size % 14 == 0 and cfg.evaluate.hummingbird.input_size % 14 == 0


def test_evaluation_job_gets_only_its_protocol(default_config_dict):
    from mosic.config import evaluate_job, evaluate_job_from_dict

    cfg = parse_config(default_config_dict)
    job = evaluate_job(cfg.evaluate, "hummingbird").as_dict()  # the evaluate rule's params
    assert "hummingbird" in job and not {"linear", "clustering", "videoseg"} & set(job)
    rebuilt = evaluate_job_from_dict("hummingbird", job)
    assert rebuilt.section == cfg.evaluate.hummingbird and rebuilt.reused is None
    assert rebuilt.shared.seed == cfg.evaluate.seed and rebuilt.shared.image_dataset == cfg.evaluate.image_dataset
    with pytest.raises(ConfigError, match="unknown config key 'evaluate.linear'"):  # no other protocol's settings
        evaluate_job_from_dict("hummingbird", {**job, "linear": to_dict(cfg.evaluate.linear)})
    # config.yaml itself must still hold every protocol.
    del default_config_dict["evaluate"]["linear"]
    with pytest.raises(ConfigError, match="missing config key 'evaluate.linear'"):
        parse_config(default_config_dict)
    with pytest.raises(ConfigError, match="unknown protocol 'knn'"):
        evaluate_job(cfg.evaluate, "knn")


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (("clips", "num_frames"), 1, "config key 'clips.num_frames' is 1; accepted values: an integer >= 2"),
        (
            ("train", "input_size"),
            130,
            "config key 'train.input_size' is 130; accepted values: a multiple of the patch size 16 of train.model "
            "'test_vit', e.g. 128 or 144",
        ),
        (
            ("evaluate", "hummingbird", "input_size"),
            120,
            "config key 'evaluate.hummingbird.input_size' is 120; accepted values: a multiple of the patch size 16 of "
            "train.model 'test_vit', e.g. 112 or 128",
        ),
        (
            ("evaluate", "input_size"),
            100,
            "config key 'evaluate.input_size' is 100; accepted values: a multiple of the patch size 16",
        ),
        (
            ("evaluate", "videoseg", "input_size"),
            200,
            "config key 'evaluate.videoseg.input_size' is 200; accepted values: a multiple of the patch size 16",
        ),
        (("runs", "seeds"), [], "config key 'runs.seeds' must be a non-empty list of integers, got []"),
        (
            ("runs", "controls"),
            "static",
            "config key 'runs.controls' must be a list of values among 'shuffled', 'static', 'transposed', got "
            "'static'",
        ),
        (("evaluate", "clustering", "ks"), 5, "'evaluate.clustering.ks' must be a non-empty list of integers, got 5"),
    ],
)
def test_values_that_would_fail_later_fail_at_parse_time(default_config_dict, path, value, expected):
    node = default_config_dict
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(ConfigError) as err:
        parse_config(default_config_dict)
    assert expected in str(err.value)


def test_input_size_is_checked_against_the_patch_size_in_the_model_name(default_config_dict):
    train = default_config_dict["train"]
    train["model"], train["input_size"] = "vit_small_patch14_dinov2.lvd142m", 128
    expected = (
        "'train.input_size' is 128; accepted values: a multiple of the patch size 14 of train.model "
        "'vit_small_patch14_dinov2.lvd142m', e.g. 126 or 140"
    )
    with pytest.raises(ConfigError, match=re.escape(expected)):
        parse_config(default_config_dict)
    train["input_size"] = 224
    with pytest.raises(ConfigError, match=re.escape("'evaluate.input_size' is 128")):  # the evaluation's sizes too
        parse_config(default_config_dict)
    evaluate = default_config_dict["evaluate"]
    evaluate["input_size"] = evaluate["hummingbird"]["input_size"] = evaluate["videoseg"]["input_size"] = 224
    assert parse_config(default_config_dict).train.input_size == 224
    # A name without a patch size is left to build_backbone, which reads it from the built model.
    train["model"], train["input_size"] = "flexivit_small", 130
    assert parse_config(default_config_dict).train.model == "flexivit_small"


def test_model_patch_size_matches_timm():
    """The name-only patch size (config.py imports no timm) agrees with the models timm builds."""
    import timm
    import torch

    from mosic.config.parse import _NAMED_PATCH_SIZES, model_patch_size
    from mosic.model.backbone import patch_size

    names = [*_NAMED_PATCH_SIZES, "vit_small_patch14_dinov2.lvd142m", "vit_base_patch16_224", "vit_base_patch32_224"]
    for name in names:
        with torch.device("meta"):
            model = timm.create_model(name, pretrained=False, num_classes=0)
        assert model_patch_size(name) == patch_size(model), name
    assert model_patch_size("vit_so400m_patch14_siglip_384.webli") == 14
    assert model_patch_size("flexivit_small") is None and model_patch_size("resnet50") is None


def test_config_module_imports_no_torch():
    import subprocess
    import sys

    code = "import sys, mosic.config; print(any(m in sys.modules for m in ('torch', 'timm', 'numpy')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (4, "'track.substep' is 4; accepted values: 'auto', 'direct' or an integer that divides clips.step (6): "
            "1, 2, 3, 6"),
        (0, "'track.substep' is 0; accepted values: one of 'auto', 'direct' or an integer >= 1 and <= 1000"),
        ("every", "'track.substep' is 'every'; accepted values: one of 'auto', 'direct' or an integer"),
        (2.0, "'track.substep' is 2.0; accepted values: one of 'auto', 'direct' or an integer"),
        (False, "'track.substep' is False; accepted values: one of 'auto', 'direct' or an integer >= 1 and <= 1000 "
                "(YAML reads unquoted off, no, on, yes as false or true)"),
    ],
)  # fmt: skip
def test_track_substep_values_name_the_key(default_config_dict, value, expected):
    default_config_dict["clips"]["step"] = 6
    default_config_dict["track"]["substep"] = value
    with pytest.raises(ConfigError) as err:
        parse_config(default_config_dict)
    assert expected in str(err.value)
    del default_config_dict["track"]["substep"]
    with pytest.raises(ConfigError, match="missing config key 'track.substep'.*one of 'auto', 'direct' or an integer"):
        parse_config(default_config_dict)


@pytest.mark.parametrize(
    ("tracker", "mode", "step", "substep", "resolved"),
    [
        ("lk", "regular", 6, "auto", 1),
        ("lk", "regular", 1, "auto", None),  # the demo: nothing between the sampled frames
        ("lk", "regular", 6, 3, 3),
        ("lk", "regular", 6, 6, None),  # = clips.step: direct
        ("lk", "regular", 6, "direct", None),
        ("cotracker3", "regular", 6, "auto", None),
        ("cotracker3", "regular", 6, 1, 1),
        ("ground_truth", "regular", 6, 1, None),  # exact at any step
        ("lk", "uniform", 6, "auto", None),
        ("lk", "dense", 4, 3, None),  # other modes ignore it (3 does not divide the unused step either)
    ],
)
def test_track_substep_resolution(default_config_dict, tracker, mode, step, substep, resolved):
    default_config_dict["clips"].update(mode=mode, step=step)
    default_config_dict["track"].update(tracker=tracker, substep=substep)
    assert track_substep(parse_config(default_config_dict)) == resolved
