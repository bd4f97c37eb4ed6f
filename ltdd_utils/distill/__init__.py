"""Base distillers: random real subset, feature-space herding and Distribution Matching (DM).

Each returns a :class:`SyntheticSet` (normalised float images, hard labels, an optional soft-label source,
metadata). The papers' methods in ``ltdd_utils.methods`` are built on these.
"""
from .synset import SyntheticSet
from .baselines import random_subset, herding, weighted_subset
from .dm import distribution_matching, class_mean_embeddings, dm_loss, make_net_pool, pool_embeddings, pooled_class_means
from .registry import DISTILLERS, distill

__all__ = ["SyntheticSet", "random_subset", "herding", "weighted_subset", "distribution_matching",
           "class_mean_embeddings", "dm_loss",
           "make_net_pool", "pool_embeddings", "pooled_class_means", "DISTILLERS", "distill"]
