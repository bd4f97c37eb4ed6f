"""One module per chapter: the plumbing of its experiments (splits, networks, arms, their cache keys and the
claims), so that a notebook shows the paper's steps, tables, figures and verdicts. Parameters and presets
live in :mod:`ltdd_utils.chapters`."""
