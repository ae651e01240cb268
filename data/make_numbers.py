"""Generate the German→English number-words data set.

    python data/make_numbers.py                      # data/numbers with the default parameters
    python data/make_numbers.py --out-dir /tmp/nums --train-size 500 --seed 7

Training generates it on its own when missing (``TranslationDataModule.prepare_data``); this script is
for looking at the data or making it ahead of time. Same parameters give byte-identical files.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a script, the package is not on the path
    sys.path.insert(0, str(REPO_ROOT))

from seq2seq.data.numbers import ensure_numbers, make_numbers  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out-dir", type=Path, default=REPO_ROOT / "data" / "numbers")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--train-size", type=int, default=20000)
    parser.add_argument("--val-size", type=int, default=1000)
    parser.add_argument("--test-size", type=int, default=1000)
    parser.add_argument("--max-number", type=int, default=999_999)
    parser.add_argument("--force", action="store_true", help="regenerate even when the files are up to date")
    args = parser.parse_args(argv)
    params = dict(
        seed=args.seed,
        train_size=args.train_size,
        val_size=args.val_size,
        test_size=args.test_size,
        max_number=args.max_number,
    )
    if args.force:
        make_numbers(args.out_dir, **params)
        generated = True
    else:
        generated = ensure_numbers(args.out_dir, **params)
    print(f"{'wrote' if generated else 'up to date:'} {args.out_dir}")


if __name__ == "__main__":
    main()
