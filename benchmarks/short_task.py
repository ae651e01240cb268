"""A short-sequence transduction task: spell a made-up German-like word -> its phonemes.

Grapheme-to-phoneme conversion is the typical short-sequence task (a word of ~8 characters in, ~7 symbols out,
vocabularies of a few dozen entries), so it is the shape this benchmark needs; a synthesized lexicon keeps it
free of licences and downloads, and the same ``--seed`` writes the same files on every machine.

Words are built from syllables (onset, vowel, coda) over 30 letters (a-z, ä ö ü ß). Their pronunciation
follows German-like rules that need context, which is what the attention and the encoder must learn:

- multi-letter units: ``sch`` ʃ, ``ch`` x after a/o/u and ç elsewhere, ``ck`` k, ``ng`` ŋ, ``ph`` f,
  ``qu`` k v, ``ei`` aɪ, ``ie`` iː, ``eu``/``äu`` ɔʏ, ``au`` aʊ, doubled consonants once;
- position: ``s`` before a vowel is z, ``sp``/``st`` at the start are ʃp/ʃt, final b/d/g/s are devoiced
  (p t k s), a final ``e`` is ə;
- vowel length: a vowel before ``h`` or doubled is long, before two consonants short, before one consonant
  and a vowel long; before one consonant at the end of the word it is **long or short as the word happens to
  be** (German *Rad* /raːt/ against *Rat*... and *ab* /ap/): a fact of the word, not of its spelling, so
  some errors are irreducible, as in a real lexicon.

Every word occurs once in all the files (the test words are unseen in training). Files, one pair per line,
characters unspaced in ``.src`` (``data.src_tokenizer=char``) and space-separated in ``.chars`` (for
OpenNMT-py's whitespace tokens), phonemes space-separated in ``.tgt`` (``data.tgt_tokenizer=word``)::

    python benchmarks/short_task.py --out short_task          # 120,000 / 2,000 / 5,000 pairs
    python train.py experiment=ref_bilstm data.root=short_task data.src_lang=src data.tgt_lang=tgt \\
        data.src_tokenizer=char data.tgt_tokenizer=word
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

VOWELS = "aeiouäöü"
SHORT = {"a": "a", "e": "ɛ", "i": "ɪ", "o": "ɔ", "u": "ʊ", "ä": "ɛ", "ö": "œ", "ü": "ʏ"}
LONG = {"a": "aː", "e": "eː", "i": "iː", "o": "oː", "u": "uː", "ä": "ɛː", "ö": "øː", "ü": "yː"}
DIPHTHONGS = {"ei": "aɪ", "ie": "iː", "eu": "ɔʏ", "äu": "ɔʏ", "au": "aʊ"}
CONSONANTS = {"b": "b", "c": "k", "d": "d", "f": "f", "g": "ɡ", "h": "h", "j": "j", "k": "k", "l": "l", "m": "m",
              "n": "n", "p": "p", "r": "ʁ", "s": "s", "t": "t", "v": "f", "w": "v", "x": "k s", "y": "ʏ",
              "z": "t s", "ß": "s"}
CLUSTERS = {"sch": "ʃ", "ck": "k", "ng": "ŋ", "ph": "f", "qu": "k v"}
DEVOICED = {"b": "p", "d": "t", "ɡ": "k", "z": "s"}

ONSETS = ["", "b", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "t", "w", "z", "v", "ph", "qu",
          "sch", "st", "sp", "br", "dr", "fr", "gr", "kr", "pr", "tr", "bl", "fl", "gl", "kl", "pl", "schl", "schr",
          "schw", "zw", "ch", "x", "y", "c"]
NUCLEI = ["a", "e", "i", "o", "u", "ä", "ö", "ü", "ei", "ie", "eu", "au", "äu", "ah", "eh", "oh", "uh", "aa",
          "ee", "oo"]
CODAS = ["", "", "", "b", "d", "g", "k", "l", "m", "n", "r", "s", "t", "ch", "ck", "ng", "ss", "ll", "mm", "nn",
         "tt", "ff", "nd", "nt", "rt", "lt", "st", "ß", "rn", "lz", "tz"]


def pronounce(word: str, final_long: bool) -> list[str]:
    """The phonemes of ``word``; ``final_long``: the word's own choice where spelling leaves length open."""
    out: list[str] = []
    i = 0
    while i < len(word):
        rest, prev = word[i:], word[i - 1] if i else ""
        nxt_vowel = i + 1 < len(word) and word[i + 1] in VOWELS
        if i == 0 and rest[:2] in ("sp", "st"):
            out += ["ʃ", CONSONANTS[rest[1]]]
            i += 2
            continue
        unit = next((u for u in ("sch", "ck", "ng", "ph", "qu") if rest.startswith(u)), None)
        if unit:
            out += CLUSTERS[unit].split()
            i += len(unit)
            continue
        if rest.startswith("ch"):
            out.append("x" if prev in ("a", "o", "u") else "ç")
            i += 2
            continue
        diphthong = next((d for d in DIPHTHONGS if rest.startswith(d)), None)
        if diphthong:
            out += DIPHTHONGS[diphthong].split()
            i += 2
            continue
        char = word[i]
        if char in VOWELS:
            after = word[i + 1 :]
            if after[:1] == char or after[:1] == "h" and after[1:2] not in VOWELS:  # aa, ah: long
                out.append(LONG[char])
                i += 2
                continue
            if char == "e" and not after:
                out.append("ə")
            elif len(after) >= 2 and after[0] not in VOWELS and after[1] not in VOWELS:
                out.append(SHORT[char])
            elif len(after) == 1:  # one consonant, then the end: the word decides
                out.append(LONG[char] if final_long else SHORT[char])
            else:
                out.append(LONG[char] if after else SHORT[char])
            i += 1
            continue
        if char == prev:  # a doubled consonant is said once
            i += 1
            continue
        if char == "s" and nxt_vowel:
            out.append("z")
        else:
            out += CONSONANTS[char].split()
        i += 1
    if out and out[-1] in DEVOICED and word[-1] not in VOWELS:
        out[-1] = DEVOICED[out[-1]]
    return out


def make_word(rng: random.Random) -> str:
    syllables = rng.choices([1, 2, 3], weights=[3, 5, 2])[0]
    parts = []
    for index in range(syllables):
        onset = rng.choice(ONSETS)
        coda = rng.choice(CODAS) if index == syllables - 1 or rng.random() < 0.4 else ""
        parts.append(onset + rng.choice(NUCLEI) + coda)
    if rng.random() < 0.15:
        parts.append("e")
    return "".join(parts)


def make_task(out: Path, train: int, val: int, test: int, seed: int) -> dict:
    rng = random.Random(seed)
    words: dict[str, None] = {}
    total = train + val + test
    while len(words) < total:
        word = make_word(rng)
        if 2 <= len(word) <= 16:
            words.setdefault(word)
    ordered = list(words)
    rng.shuffle(ordered)  # short words are drawn out first: spread them over the splits
    out.mkdir(parents=True, exist_ok=True)
    stats = {}
    start = 0
    for split, size in (("train", train), ("val", val), ("test", test)):
        chunk = ordered[start : start + size]
        start += size
        phonemes = [pronounce(w, final_long=rng.random() < 0.5) for w in chunk]
        (out / f"{split}.src").write_text("".join(w + "\n" for w in chunk), encoding="utf-8")
        (out / f"{split}.chars").write_text("".join(" ".join(w) + "\n" for w in chunk), encoding="utf-8")
        (out / f"{split}.tgt").write_text("".join(" ".join(p) + "\n" for p in phonemes), encoding="utf-8")
        stats[split] = {"pairs": len(chunk), "src_chars_per_pair": round(sum(map(len, chunk)) / len(chunk), 2),
                        "tgt_symbols_per_pair": round(sum(map(len, phonemes)) / len(chunk), 2)}
    train_words = ordered[:train]
    train_phonemes = (out / "train.tgt").read_text(encoding="utf-8").split()
    stats["src_vocabulary"] = len(set("".join(train_words)))
    stats["tgt_vocabulary"] = len(set(train_phonemes))
    return stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="folder for {train,val,test}.{src,chars,tgt}")
    parser.add_argument("--train", type=int, default=120_000)
    parser.add_argument("--val", type=int, default=2_000)
    parser.add_argument("--test", type=int, default=5_000)
    parser.add_argument("--seed", type=int, default=2024)
    args = parser.parse_args()
    print(json.dumps(make_task(args.out, args.train, args.val, args.test, args.seed), indent=2))


if __name__ == "__main__":
    main()
