"""The five papers' methods, each a small module built on ``ltdd_utils.distill`` (one per chapter)."""
