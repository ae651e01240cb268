"""Training: the LightningModule, its callbacks, the progress log, checkpoint writing, and ``train(cfg)``.

    module.py         TranslationModule: loss, training/validation/test steps, metrics
    schedulers.py     the optimizer and learning-rate schedules
    nonfinite.py      NonFiniteUpdates: clipping; NaN/inf losses and gradient norms skipped, counted, bounded
    dropout_seeding.py  DropoutSeeding: dropout masks seeded per step (a resumed run draws the same ones)
    samples.py        ValidationSamples: attention heatmaps and sample translations to the loggers
    logger_media.py   what each logger kind takes besides curves: settings, figures, sample tables
    callbacks.py      LastCheckpoint (last.ckpt kept current), GracefulShutdown (SIGTERM/SIGUSR1/Ctrl-C)
    progress_log.py   plain progress lines for train.log and non-terminal stderr
    checkpoint_io.py  checkpoints written atomically (temporary file, fsync, rename); failed writes one line
    console.py        the first screen of a run: a one-line parameter summary, no adverts
    distributed.py    failed DDP ranks reported by rank, DDP inside Hydra sweeps
    fit_loop.py       a checkpoint from an epoch's end resumes the same with or without trainer.max_steps
    run.py            train(cfg): data, model, logger, callbacks and Trainer from one Hydra config

May import: ``seq2seq.models``, ``seq2seq.data``, ``seq2seq.inference`` (validation decodes through its
Decoding, scores with its metrics and draws its attention figures), and the shared top-level modules
(``decode_options``, ``config``, ``config_checks``, ``checkpoint``). Only ``seq2seq.cli`` imports it (for the ways a run stops): inference never
needs Lightning's training machinery.
"""
