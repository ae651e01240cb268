"""One definition of each decoding option: seq2seq/decode_options.py. Its defaults are stated nowhere else (no
keyword default, dataclass field, ``.get(name, default)`` or config value repeats one), and its check is the only
one: every way of decoding refuses the same impossible values with the same message."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest
import yaml

from seq2seq.decode_options import DecodeOptionError, DecodeOptions

REPO = Path(__file__).resolve().parents[2]
NAMES = set(DecodeOptions.names())
DEFINITION = REPO / "seq2seq" / "decode_options.py"
# Other things of the same name: the seeds of a run, of its data order and of the built-in numbers task.
OTHER_CONCEPTS = {("seq2seq/config.py", "seed"), ("seq2seq/data/datamodule.py", "seed")}


def second_copies(source: str, where: str) -> list[str]:
    """Places in Python ``source`` that give a decoding option a default of their own."""
    names = NAMES - {name for path, name in OTHER_CONCEPTS if path == where}
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            arguments = node.args
            positional = arguments.posonlyargs + arguments.args
            pairs = list(zip(positional[len(positional) - len(arguments.defaults):], arguments.defaults))
            pairs += [(arg, default) for arg, default in zip(arguments.kwonlyargs, arguments.kw_defaults) if default]
            found += [f"{where}:{arg.lineno}: parameter {arg.arg}=..." for arg, _ in pairs if arg.arg in names]
        elif isinstance(node, ast.ClassDef):
            for statement in node.body:
                if isinstance(statement, ast.AnnAssign) and statement.value is not None and \
                        isinstance(statement.target, ast.Name) and statement.target.id in names:
                    found.append(f"{where}:{statement.lineno}: field {statement.target.id} = ...")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get" \
                and len(node.args) == 2 and isinstance(node.args[0], ast.Constant) and node.args[0].value in names:
            found.append(f"{where}:{node.lineno}: .get({node.args[0].value!r}, default)")
    return found


def restated_in_config(document: object, where: str) -> list[str]:
    """``decode:`` entries of a YAML config that repeat a default (a different value is a setting, not a copy)."""
    found = []
    if isinstance(document, dict):
        for key, value in document.items():
            if key == "decode" and isinstance(value, dict):
                found += [f"{where}: decode.{name}: {setting!r} is the default" for name, setting in value.items()
                          if name in NAMES and setting == getattr(DecodeOptions(), name)]
            else:
                found += restated_in_config(value, where)
    return found


def test_the_scanner_finds_second_copies_of_every_kind():
    source = ("def f(beam_size=5): pass\ndef g(*, n_best=1): pass\nclass C:\n    top_k: int = 10\n"
              "x = settings.get('temperature', 1.0)\ndef ok(beam_size): pass\n")
    assert len(second_copies(source, "x.py")) == 4
    assert len(restated_in_config({"decode": {"beam_size": 5, "n_best": 2}, "x": {"decode": {"top_p": 0.9}}},
                                  "c.yaml")) == 2


def test_no_decoding_default_is_defined_twice():
    sources = sorted((REPO / "seq2seq").rglob("*.py")) + [REPO / name for name in ("train.py", "evaluate.py",
                                                                                     "serve.py")]
    copies = [copy for path in sources if path != DEFINITION
              for copy in second_copies(path.read_text(encoding="utf-8"), str(path.relative_to(REPO)))]
    for path in sorted((REPO / "conf").rglob("*.yaml")):
        copies += restated_in_config(yaml.safe_load(path.read_text(encoding="utf-8")), str(path.relative_to(REPO)))
    assert not copies, "decoding defaults restated outside seq2seq/decode_options.py:\n" + "\n".join(copies)


@pytest.mark.parametrize("options, named", [
    (dict(beam_size=0), "beam_size"), (dict(beam_size=2, n_best=3), "n_best"), (dict(length_penalty=-0.1),
                                                                             "length_penalty"),
    (dict(length_penalty=float("nan")), "length_penalty"), (dict(max_length_ratio=0.0), "max_length_ratio"),
    (dict(max_length=0), "max_length"), (dict(max_length=2**63), "max_length"), (dict(sampling="top3"), "sampling"),
    (dict(sampling="topk"), "sampling"), (dict(sampling="topk", beam_size=1, top_k=0), "top_k"),
    (dict(sampling="topp", beam_size=1, top_p=1.5), "top_p"), (dict(temperature=0.0), "temperature"),
    (dict(seed=2**64), "seed"), (dict(beam_size=2.0), "beam_size"), (dict(n_best=True), "n_best"),
    (dict(beem_size=3), "beem_size"),
])
def test_every_impossible_option_is_refused_by_the_one_check_naming_it(options, named):
    with pytest.raises(DecodeOptionError) as caught:
        DecodeOptions.from_mapping(options, key="decode")
    assert caught.value.option == named and str(caught.value).startswith(f"decode.{named}: ")
    if named != "beem_size":
        with pytest.raises(DecodeOptionError, match=rf"^{named}: "):
            DecodeOptions(**options)  # an instance cannot be made impossible, however it is made


def test_options_are_the_hydra_schema_of_every_entry_point():
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from seq2seq.config import register_configs

    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        for name in ("train", "evaluate", "serve"):
            cfg = compose(config_name=name, overrides=[] if name == "train" else ["ckpt_path=x"])
            assert set(cfg.decode) == NAMES, name
            with pytest.raises(Exception, match="beem_size"):
                compose(config_name=name, overrides=["decode.beem_size=3", "ckpt_path=x"][: 1 if name == "train"
                                                                                          else 2])
    assert dataclasses.asdict(DecodeOptions())["beam_size"] == 5
