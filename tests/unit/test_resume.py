"""Which checkpoint a run continues from (resume, ckpt_path), the run folder named by run_name, and SLURM's own
requeueing switched off."""

from __future__ import annotations

from pathlib import Path

import pytest
from lightning.pytorch.plugins.environments import SLURMEnvironment

from seq2seq.training.run import checkpoint_to_resume, cluster_plugins
from tests.e2e.conftest import compose_train, tiny_overrides


@pytest.mark.parametrize(
    "resume, ckpt_path, last_exists, expected",
    [
        ("never", None, True, None),  # the default: a run starts over, whatever its folder holds
        ("never", "start.ckpt", True, "start.ckpt"),
        ("auto", None, False, None),  # the first launch of a job
        ("auto", None, True, "last"),  # the same command again
        ("auto", "start.ckpt", False, "start.ckpt"),  # the first launch starts from the given checkpoint...
        ("auto", "start.ckpt", True, "last"),  # ...and a requeued one goes on from its own, not back to that one
    ],
)
def test_resume_auto_prefers_the_runs_own_last_checkpoint(tmp_path, resume, ckpt_path, last_exists, expected):
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    if last_exists:
        last.parent.mkdir(parents=True)
        last.write_bytes(b"")
    overrides = [f"resume={resume}"] + ([f"ckpt_path={tmp_path / ckpt_path}"] if ckpt_path else [])
    cfg = compose_train(tiny_overrides(tmp_path) + overrides)
    chosen = checkpoint_to_resume(cfg, last)
    assert chosen == (None if expected is None else last if expected == "last" else tmp_path / expected)


def test_run_name_names_the_run_folder():
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    conf = Path(__file__).resolve().parents[2] / "conf"
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        named = compose(config_name="train", overrides=["run_name=job42"], return_hydra_config=True)
        default = compose(config_name="train", return_hydra_config=True)
    assert named.hydra.run.dir == "logs/train/runs/job42"
    assert default.hydra.run.dir == f"logs/train/runs/{default.run_name}"  # the date and time, as before
    assert default.run_name[:2] == "20" and "_" in default.run_name


def test_under_slurm_lightnings_own_requeue_is_off(monkeypatch):
    for name in ("SLURM_NTASKS", "SLURM_JOB_NAME"):
        monkeypatch.delenv(name, raising=False)
    assert cluster_plugins([]) == []  # not under SLURM: Lightning picks the environment as usual
    monkeypatch.setenv("SLURM_NTASKS", "1")
    monkeypatch.setenv("SLURM_JOB_NAME", "train")
    (environment,) = cluster_plugins([])
    assert isinstance(environment, SLURMEnvironment) and not environment.auto_requeue
    given = SLURMEnvironment(auto_requeue=True)
    assert cluster_plugins([given]) == [given]  # a cluster environment the user configured is kept
