"""The built-in toy task: German number words to English number words.

    342105  ->  de: "dreihundertzweiundvierzigtausendeinhundertfünf"
                en: "three hundred and forty-two thousand, one hundred and five"

German writes numbers below a million as one word with the units before the tens, English as several
words with the tens first: a small task that still needs attention and reordering. Generated with
``num2words`` from a seed; the same seed gives byte-identical files.
"""

from __future__ import annotations

import json
import logging
import random
from importlib.metadata import version
from pathlib import Path

from num2words import num2words

from seq2seq.data.atomic import write_text_atomic

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
LANGS = ("de", "en")
# Bump when the sampling below changes, so existing data is regenerated rather than silently reused.
GENERATOR_VERSION = 1


def sample_numbers(rng: random.Random, count: int, max_number: int) -> list[int]:
    """``count`` distinct numbers in ``[0, max_number]``, with the number of digits drawn uniformly.

    Drawing the digit count first keeps small numbers common (uniform sampling would make almost all
    numbers six digits long). A digit class that runs out (there are only ten 1-digit numbers) is
    closed and the draw goes to the remaining classes.
    """
    if max_number < 0:
        raise ValueError(f"data.numbers.max_number must be >= 0, got {max_number}")
    if count > max_number + 1:
        raise ValueError(
            f"cannot draw {count} distinct numbers from [0, {max_number}]: "
            f"raise data.numbers.max_number or lower the split sizes"
        )
    ranges = {}
    for digits in range(1, len(str(max_number)) + 1):
        low = 0 if digits == 1 else 10 ** (digits - 1)
        ranges[digits] = (low, min(10**digits - 1, max_number))
    used_per_class = dict.fromkeys(ranges, 0)
    open_classes = list(ranges)
    chosen: list[int] = []
    seen: set[int] = set()
    while len(chosen) < count:
        digits = rng.choice(open_classes)
        low, high = ranges[digits]
        number = rng.randint(low, high)
        while number in seen:
            number = rng.randint(low, high)
        seen.add(number)
        chosen.append(number)
        used_per_class[digits] += 1
        if used_per_class[digits] == high - low + 1:
            open_classes.remove(digits)
    return chosen


def _meta(seed: int, train_size: int, val_size: int, test_size: int, max_number: int) -> dict:
    return {
        "seed": seed,
        "train_size": train_size,
        "val_size": val_size,
        "test_size": test_size,
        "max_number": max_number,
        "generator_version": GENERATOR_VERSION,
        "num2words_version": version("num2words"),
    }


def make_numbers(
    out_dir: Path, *, seed: int, train_size: int, val_size: int, test_size: int, max_number: int
) -> None:
    """Write ``{train,val,test}.{de,en}`` and ``meta.json`` under ``out_dir``.

    All numbers are drawn without replacement and then shuffled before splitting, so no val/test number
    appears in train and every split has the same mix of magnitudes. Each file is written atomically;
    ``meta.json`` is written last, so its presence means the set is complete.
    """
    sizes = {"train": train_size, "val": val_size, "test": test_size}
    for split, size in sizes.items():
        if size < 1:
            raise ValueError(f"data.numbers.{split}_size must be >= 1, got {size}")
    rng = random.Random(seed)
    numbers = sample_numbers(rng, sum(sizes.values()), max_number)
    rng.shuffle(numbers)

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    # An interrupted run must not leave old meta next to new files.
    (out_dir / "meta.json").unlink(missing_ok=True)
    start = 0
    for split in SPLITS:
        split_numbers = numbers[start : start + sizes[split]]
        start += sizes[split]
        for lang in LANGS:
            lines = [num2words(n, lang=lang) for n in split_numbers]
            write_text_atomic(out_dir / f"{split}.{lang}", "".join(line + "\n" for line in lines))
    meta = _meta(seed, train_size, val_size, test_size, max_number)
    write_text_atomic(out_dir / "meta.json", json.dumps(meta, indent=2, sort_keys=True) + "\n")


def ensure_numbers(
    out_dir: Path, *, seed: int, train_size: int, val_size: int, test_size: int, max_number: int
) -> bool:
    """Generate the data unless ``out_dir`` already holds it with these exact parameters.

    Returns True when files were (re)generated.
    """
    out_dir = Path(out_dir)
    wanted = _meta(seed, train_size, val_size, test_size, max_number)
    meta_path = out_dir / "meta.json"
    files_present = all((out_dir / f"{split}.{lang}").is_file() for split in SPLITS for lang in LANGS)
    if meta_path.is_file() and files_present:
        try:
            existing = json.loads(meta_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            existing = None
        if existing == wanted:
            return False
        log.info("%s: parameters changed (%s -> %s); regenerating", meta_path, existing, wanted)
    log.info("generating the numbers data set in %s", out_dir)
    make_numbers(
        out_dir, seed=seed, train_size=train_size, val_size=val_size, test_size=test_size, max_number=max_number
    )
    return True
