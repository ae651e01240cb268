"""Test-only callbacks that inject faults into real runs, configured from the command line like any callback:

    python train.py ... +callbacks.kill._target_=tests.helpers.KillAt +callbacks.kill.where=validation \\
        +callbacks.kill.global_step=7

They are importable from train.py (the repository root is on its sys.path) and from ddp_spawn workers.
"""

from tests.helpers.faults import DiskFullAt, FailOnRank, KillAt, NanLoss, RecordWeights, SignalAt, WaitForSignal

__all__ = ["DiskFullAt", "FailOnRank", "KillAt", "NanLoss", "RecordWeights", "SignalAt", "WaitForSignal"]
