"""python -m seq2seq train|evaluate|serve|export [key=value ...]: the console commands (seq2seq/commands.py)."""

from seq2seq.commands import main

main()
