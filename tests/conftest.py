"""Shared test fixtures."""

import os

import pytest
import torch


@pytest.fixture
def single_thread():
    """Run a test on one intra-op thread, then restore the previous setting.

    Unit tests use tiny tensors (B=3, S=5, H=4), where splitting an op across threads costs more than it
    saves, and on a small, busy CI machine (2 cores, one taken by another job) the threads' spin-waiting
    made the model tests several times slower. Opt in per module with
    ``pytestmark = pytest.mark.usefixtures("single_thread")``.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(autouse=True, scope="session")
def preprocessing_cache(tmp_path_factory):
    """One preprocessing cache (``data.cache_dir``'s default) for the whole test session, never the user's own.

    Set in the environment, so the ``train.py``/``evaluate.py`` processes that e2e tests start use it too.
    """
    previous = os.environ.get("SEQ2SEQ_CACHE_DIR")
    os.environ["SEQ2SEQ_CACHE_DIR"] = str(tmp_path_factory.mktemp("preprocessing-cache"))
    yield
    if previous is None:
        os.environ.pop("SEQ2SEQ_CACHE_DIR", None)
    else:
        os.environ["SEQ2SEQ_CACHE_DIR"] = previous
