"""Checkpoints: a damaged newest checkpoint falls back to the one before, said and
kept aside; a run with checkpoints never silently restarts; older checkpoints
without `parameters` still restore; an unreadable params.json is a clear error.

Unit tests on a tiny model's checkpoints, built once; one end-to-end run (slow)."""

import json
import os
import shutil

import pytest
import tensorflow as tf
from test_main import SMALL, read_csv, run_main

import params
from train import TrainingState
from utils.runs import checkpoints
from utils.runs.checkpoints import Checkpoints
from utils.runs.folder import ADDED_LATER, RunFolderError, load_parameters
from utils.settings import cli

TINY = [
    "--dataset=dsprites", "--image_size=32", "--latent_size=2",
    "--conv_layers=[[4,4,2]]", "--dense_layers=[[8]]",
]  # fmt: skip
DATA = "ckpt-2.data-00000-of-00001"


@pytest.fixture(scope="module")
def tiny():
    p, _ = cli.parse_command_line(cli.read_params(params), TINY)
    return p, TrainingState.new(p, (32, 32, 1), tf.distribute.get_strategy())


@pytest.fixture(scope="module")
def template(tiny, tmp_path_factory):
    """checkpoints/ of a run saved at steps 1 and 2 (each holding its step)."""
    _, state = tiny
    folder = tmp_path_factory.mktemp("template") / "checkpoints"
    saved = Checkpoints(folder, **state.trackables())
    for step in (1, 2):
        state.step.assign(step)
        saved.save(step)
    return folder


@pytest.fixture
def folder(template, tmp_path):
    """A fresh copy of the template's checkpoints/."""
    return shutil.copytree(template, tmp_path / "checkpoints")


@pytest.fixture
def state(tiny):
    _, state = tiny
    state.step.assign(-1)  # so that a restore shows which checkpoint it read
    return state


def truncate(path):
    os.truncate(path, path.stat().st_size // 2)


def flip_a_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(data)


DAMAGES = {
    "truncated data": lambda latest: truncate(latest / DATA),
    "truncated index": lambda latest: truncate(latest / "ckpt-2.index"),
    "corrupt data": lambda latest: flip_a_byte(latest / DATA),
    "deleted data": lambda latest: (latest / DATA).unlink(),
    "deleted index": lambda latest: (latest / "ckpt-2.index").unlink(),
    "deleted files": lambda latest: [p.unlink() for p in latest.glob("ckpt-2.*")],
}


def ckpt_files(latest):
    return sorted(p.name for p in latest.glob("ckpt-*"))


def listed_in_index(latest):
    found = tf.train.get_checkpoint_state(str(latest))
    return [os.path.basename(path) for path in found.all_model_checkpoint_paths]


# --- a damaged newest checkpoint --------------------------------------------------


@pytest.mark.parametrize("damage", DAMAGES)
def test_a_damaged_newest_checkpoint_falls_back_to_the_one_before(
    damage, folder, state, capsys
):
    DAMAGES[damage](folder / "latest")
    # The checks before the data load agree with what the restore then picks.
    assert checkpoints.latest_checkpoint_step(folder) == 1
    assert checkpoints.read_state_value(folder, "step") == 1
    assert Checkpoints(folder, **state.trackables()).restore() == 1
    assert state.step.numpy() == 1
    said = capsys.readouterr().out.splitlines()
    skipped = [line for line in said if "ckpt-2" in line and "Skipping" in line]
    assert len(skipped) == 1, said  # said once, on one line, with why
    assert skipped[0].split(": ", 1)[1], said


@pytest.mark.parametrize("damage", ["truncated data", "deleted files"])
def test_after_a_fallback_saves_rotate_the_damaged_checkpoint_not_the_good_one(
    damage, folder, state, capsys
):
    latest = folder / "latest"
    DAMAGES[damage](latest)
    damaged = {p.name: p.read_bytes() for p in latest.glob("ckpt-2.*")}
    saved = Checkpoints(folder, **state.trackables())
    assert saved.restore() == 1
    assert listed_in_index(latest) == ["ckpt-1"]
    aside = latest / "damaged-ckpt-2"
    if damaged:  # moved, unchanged, and the user told where
        assert {p.name: p.read_bytes() for p in aside.iterdir()} == damaged
        assert str(aside) in capsys.readouterr().out
    else:
        assert not aside.exists()
    saved.save(3)  # before: ckpt-1 made room and the damaged ckpt-2 stayed managed
    assert ckpt_files(latest) == [
        "ckpt-1.data-00000-of-00001", "ckpt-1.index",
        "ckpt-3.data-00000-of-00001", "ckpt-3.index",
    ]  # fmt: skip
    assert Checkpoints(folder, **state.trackables()).restore() == 3


def test_a_fallback_by_the_object_that_saved_keeps_its_rotation_right(
    tmp_path, state, capsys
):
    saved = Checkpoints(tmp_path, **state.trackables())
    for step in (1, 2):
        saved.save(step)
    truncate(tmp_path / "latest" / DATA)
    assert saved.restore() == 1
    saved.save(3)  # its manager forgot the damaged ckpt-2: ckpt-1 stays
    assert [p.name for p in sorted((tmp_path / "latest").glob("*.index"))] == [
        "ckpt-1.index", "ckpt-3.index",
    ]  # fmt: skip


def test_restore_is_the_final_judge(folder, state, capsys, monkeypatch):
    monkeypatch.setattr(checkpoints, "_damage", lambda prefix: None)  # all pass
    truncate(folder / "latest" / DATA)
    assert Checkpoints(folder, **state.trackables()).restore() == 1
    assert "Skipping" in capsys.readouterr().out
    assert (folder / "latest" / "damaged-ckpt-2").is_dir()


def test_a_second_damaged_checkpoint_of_the_same_step_is_kept_aside_too(
    folder, state, capsys
):
    latest = folder / "latest"
    for _ in range(2):
        truncate(latest / DATA)
        saved = Checkpoints(folder, **state.trackables())
        assert saved.restore() == 1
        saved.save(2)
    assert sorted(p.name for p in latest.glob("damaged-*")) == [
        "damaged-ckpt-2", "damaged-ckpt-2-2",
    ]  # fmt: skip


@pytest.mark.parametrize(
    "index, fault",
    [
        ("garbage ::: {{", "was unreadable"),
        ("", "was unreadable"),
        (None, "was missing"),
    ],
)
def test_an_unreadable_or_missing_index_restores_the_newest_checkpoint(
    index, fault, folder, state, capsys
):
    latest = folder / "latest"
    if index is None:
        (latest / "checkpoint").unlink()
    else:
        (latest / "checkpoint").write_text(index)
    assert checkpoints.latest_checkpoint_step(folder) == 2
    saved = Checkpoints(folder, **state.trackables())
    assert saved.restore() == 2 and state.step.numpy() == 2
    assert listed_in_index(latest) == ["ckpt-1", "ckpt-2"]  # rewritten
    said = capsys.readouterr().out
    assert f"{latest / 'checkpoint'}, which {fault}" in said, said
    saved.save(3)
    saved.save(4)  # the rewritten index keeps the manager's rotation
    assert [p.name for p in sorted(latest.glob("*.index"))] == [
        "ckpt-3.index", "ckpt-4.index",
    ]  # fmt: skip


def test_when_no_checkpoint_restores_the_error_names_the_folder(folder, state, capsys):
    latest = folder / "latest"
    truncate(latest / DATA)
    (latest / "ckpt-1.index").unlink()
    before = ckpt_files(latest)
    for attempt in (
        lambda: checkpoints.latest_checkpoint_step(folder),
        lambda: checkpoints.read_state_value(folder, "parameters"),
        lambda: Checkpoints(folder, **state.trackables()).restore(),
    ):
        with pytest.raises(RunFolderError) as refused:  # main.py: exit 2
            attempt()
        message = str(refused.value)
        assert str(latest) in message
        assert "ckpt-1" in message and "ckpt-2" in message
    assert ckpt_files(latest) == before  # nothing moved or removed


def test_an_index_left_without_any_checkpoint_file_is_refused(folder, state):
    latest = folder / "latest"
    for path in latest.glob("ckpt-*"):
        path.unlink()
    (latest / "checkpoint").write_text("garbage")
    with pytest.raises(RunFolderError, match=str(latest)):
        Checkpoints(folder, **state.trackables()).restore()


def test_a_folder_without_checkpoints_is_a_new_run(tmp_path, state):
    assert Checkpoints(tmp_path, **state.trackables()).restore() is None
    assert checkpoints.latest_checkpoint_step(tmp_path) == 0
    assert checkpoints.read_state_value(tmp_path, "parameters") is None
    assert state.step.numpy() == -1


def test_the_log_parameter_receives_each_line(folder, state, capsys):
    truncate(folder / "latest" / DATA)
    lines = []
    assert Checkpoints(folder, **state.trackables()).restore(log=lines.append) == 1
    assert any("Skipping" in line and "ckpt-2" in line for line in lines)
    assert all("\n" not in line for line in lines)
    assert capsys.readouterr().out == ""


# --- the parameters a checkpoint holds --------------------------------------------


def test_read_state_value_returns_the_saved_parameters_and_state(tiny, folder):
    p, _ = tiny
    assert checkpoints.read_state_value(folder, "parameters") == json.loads(
        json.dumps(p)
    )
    assert checkpoints.read_state_value(folder, "validations_without_improvement") == 0


def older_checkpoint(state, tmp_path, without):
    """A checkpoint of `state` at step 7 as a version that lacked `without` saved it."""
    kept = {k: v for k, v in state.trackables().items() if k not in without}
    state.step.assign(7)
    manager = tf.train.CheckpointManager(
        tf.train.Checkpoint(**kept), str(tmp_path / "latest"), max_to_keep=2
    )
    manager.save(checkpoint_number=7)
    state.step.assign(-1)
    return tmp_path


def test_a_checkpoint_from_before_parameters_were_saved_restores(state, tmp_path):
    folder = older_checkpoint(state, tmp_path, without={"parameters"})
    assert checkpoints.read_state_value(folder, "parameters") is None
    assert Checkpoints(folder, **state.trackables()).restore() == 7
    assert state.step.numpy() == 7


@pytest.mark.parametrize(
    "without", [{"best_validation_loss"}, {"parameters", "optimizer"}]
)
def test_a_checkpoint_lacking_anything_else_is_refused(state, tmp_path, without):
    folder = older_checkpoint(state, tmp_path, without=without)
    with pytest.raises(AssertionError, match="not bound to checkpointed values"):
        Checkpoints(folder, **state.trackables()).restore()


# --- params.json ------------------------------------------------------------------


def test_invalid_params_json_names_the_file_the_place_and_the_fix(tmp_path):
    path = tmp_path / "params.json"
    path.write_text('{\n  "beta": 4.0\n  "seed": 0\n}\n')  # a comma forgotten
    with pytest.raises(RunFolderError) as refused:
        load_parameters(tmp_path)
    message = str(refused.value)
    assert str(path) in message and "line 3 column 3" in message
    assert "delete it" in message and "latest checkpoint" in message


@pytest.mark.parametrize("text", ["[1, 2]", "null", b"\xff\xfe{}"])
def test_params_json_that_is_not_an_object_of_parameters_is_refused(tmp_path, text):
    path = tmp_path / "params.json"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(RunFolderError, match=str(path)):
        load_parameters(tmp_path)


def test_valid_params_json_loads_with_the_parameters_added_later(tmp_path):
    (tmp_path / "params.json").write_text('{"beta": 4.0}')
    assert load_parameters(tmp_path) == {**ADDED_LATER, "beta": 4.0}
    assert load_parameters(tmp_path / "elsewhere") is None


# --- end to end -------------------------------------------------------------------


@pytest.mark.slow
def test_main_resumes_past_a_damaged_checkpoint_and_refuses_when_none_is_left(
    celeba_dir, tmp_path
):
    run = tmp_path / "damaged"
    args = [
        *SMALL, f"--data_dir={celeba_dir}", f"--predictions_dir={tmp_path}",
        "--run_name=damaged", "--checkpoint_step=2", "--plot_step=1000",
    ]  # fmt: skip
    assert run_main(*args, "--num_steps=4").returncode == 0
    latest = run / "checkpoints" / "latest"
    truncate(latest / "ckpt-4.data-00000-of-00001")

    result = run_main(*args, "--num_steps=6")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Restored the checkpoint of step 2" in result.stdout
    assert "ckpt-4" in result.stdout and (latest / "damaged-ckpt-4").is_dir()
    steps = [int(row["step"]) for row in read_csv(run / "log.csv")[1]]
    assert steps == list(range(1, 7))  # 3 and 4 trained again, logged once

    params_json = run / "params.json"
    saved = params_json.read_text()
    params_json.write_text(saved.replace(",", "", 1))
    result = run_main(*args, "--num_steps=8")
    assert result.returncode == 2 and str(params_json) in result.stderr
    assert "Data:" not in result.stdout  # refused before the data load
    params_json.write_text(saved)

    for index in latest.glob("ckpt-*.index"):
        truncate(index)
    result = run_main(*args, "--num_steps=8")
    assert result.returncode == 2, result.stderr[-3000:]
    assert str(latest) in result.stderr and "Data:" not in result.stdout
