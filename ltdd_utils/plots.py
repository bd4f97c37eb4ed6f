"""Figures the chapters share: long-tail profiles, method comparisons with error bars, per-class curves,
image grids."""
from __future__ import annotations

import matplotlib.pyplot as plt
import seaborn as sns
import torch


def longtail_profiles(counts_by_if: dict, class_names=None, ax=None):
    """Images per class (log scale) for several imbalance factors."""
    ax = ax or plt.subplots(figsize=(6, 3.5))[1]
    for f, counts in counts_by_if.items():
        ax.plot(range(len(counts)), counts, marker="o", label=f"IF {f:g}")
    ax.set_yscale("log")
    ax.set_xticks(range(len(next(iter(counts_by_if.values())))))
    if class_names:
        ax.set_xticklabels(class_names, rotation=45, ha="right")
    ax.set_xlabel("class (head → tail)")
    ax.set_ylabel("training images")
    ax.legend()
    return ax


def compare_methods(df, x: str, y: str = "acc", hue: str = "method", ax=None, title: str | None = None):
    """Bar chart of ``y`` (mean over records) with ±1 std error bars across seeds and students."""
    ax = ax or plt.subplots(figsize=(6, 3.5))[1]
    sns.barplot(data=df, x=x, y=y, hue=hue, errorbar="sd", capsize=0.1, ax=ax)
    ax.set_ylabel(f"{y} (%)")
    n = df[hue].nunique()
    ncol = min(n, 4)                                  # wrap a long legend into rows within the axes
    ax.set_ylim(0, ax.get_ylim()[1] * (1.1 + 0.1 * -(-n // ncol)))     # room for the legend above the bars
    ax.legend(loc="upper center", ncol=ncol, fontsize="small", frameon=False)
    if title:
        ax.set_title(title)
    return ax


def per_class_accuracy(df, num_classes: int, hue: str = "method", class_names=None, ax=None, title=None,
                       ylabel: str = "test accuracy (%)", order=None):
    """Per-class test accuracy (mean ± std over records), one line per ``hue`` value; classes from head to
    tail: ``order[r]`` is the class of rank r (default: class r)."""
    ax = ax or plt.subplots(figsize=(6, 3.5))[1]
    order = list(range(num_classes)) if order is None else list(order)
    cols = [f"per_class.{c}" for c in range(num_classes)]
    long = df.melt(id_vars=[hue], value_vars=cols, var_name="class", value_name="accuracy")
    long["class"] = long["class"].str.split(".").str[1].astype(int).map(order.index)
    sns.lineplot(data=long, x="class", y="accuracy", hue=hue, errorbar="sd", marker="o", ax=ax)
    ax.set_xticks(range(num_classes))
    if class_names:
        ax.set_xticklabels([class_names[c] for c in order], rotation=45, ha="right")
    ax.set_xlabel("class (head → tail)")
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    return ax


def per_rank_accuracy(df, orders: dict, num_classes: int, hue: str = "method", ax=None, title=None,
                      ylabel: str = "test accuracy (%)"):
    """Per-class test accuracy by tail rank (0 = head) where each seed ranks the classes its own way: ``orders``
    maps a record's ``seed`` to its ranking (``order[r]``, the class of rank r); mean ± std over records, one line
    per ``hue`` value, the legend outside the axes."""
    ax = ax or plt.subplots(figsize=(6, 3.5))[1]
    cols = [f"per_class.{c}" for c in range(num_classes)]
    long = df.melt(id_vars=[hue, "seed"], value_vars=cols, var_name="class", value_name="accuracy")
    cls = long["class"].str.split(".").str[1].astype(int)
    long["rank"] = [list(orders[s]).index(c) for s, c in zip(long["seed"], cls)]
    sns.lineplot(data=long, x="rank", y="accuracy", hue=hue, errorbar="sd", marker="o", ax=ax)
    ax.set_xticks(range(num_classes))
    per_seed = len({tuple(o) for o in orders.values()}) > 1
    ax.set(xlabel="tail rank (0 = head" + ("; each seed ranks the classes its own way)" if per_seed else ")"),
           ylabel=ylabel)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small", frameon=False)
    if title:
        ax.set_title(title)
    return ax


def image_grid(images: torch.Tensor, labels: torch.Tensor, num_classes: int, per_class: int = 10, ax=None,
               title=None, row_names=None, order=None):
    """Images in [0, 1] (N, C, H, W) as a grid: one row per class, ``per_class`` columns; ``row_names`` (one
    per class, indexed by class) label the rows; ``order``: the classes from the top row down (e.g. head to tail;
    default 0, 1, ...)."""
    order = list(range(num_classes)) if order is None else [int(c) for c in order]
    if sorted(order) != list(range(num_classes)):
        raise ValueError(f"order must list each of the {num_classes} classes once, got {order}")
    rows = []
    for c in order:
        x = images[labels == c][:per_class]
        pad = torch.ones(per_class - len(x), *images.shape[1:]) if len(x) < per_class else x[:0]
        rows.append(torch.cat([x, pad]))
    grid = torch.stack(rows)                         # C, k, ch, h, w
    n, k, ch, h, w = grid.shape
    img = grid.permute(0, 3, 1, 4, 2).reshape(n * h, k * w, ch).numpy()
    ax = ax or plt.subplots(figsize=(k * 0.6, n * 0.6))[1]
    ax.imshow(img.squeeze(-1) if ch == 1 else img, cmap="gray" if ch == 1 else None)
    ax.set_xticks([])
    if row_names is None:
        ax.set_yticks([])
    else:
        names = list(row_names)
        ax.set_yticks([h * (r + 0.5) for r in range(n)], [names[c] for c in order], fontsize=8)
        ax.tick_params(axis="y", length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    if title:
        ax.set_title(title)
    return ax


def metric_bars(df, ax, title: str, hue: str = "method", metrics=("acc", "acc_many", "acc_medium", "acc_few"),
                palette=None):
    """Each arm's accuracy overall and per class group (mean ± std over seeds as error bars); ``palette``: the
    arms' colours (seaborn's; e.g. ``"tab10"`` to tell many arms apart)."""
    import seaborn as sns
    long = df.melt(id_vars=[hue], value_vars=[m for m in metrics if m in df], var_name="metric", value_name="accuracy")
    sns.barplot(data=long, x="metric", y="accuracy", hue=hue, errorbar="sd", capsize=0.03, ax=ax, palette=palette)
    ax.set(title=title, ylabel="test accuracy (%)")
    ax.legend(fontsize=7, ncol=3)
    return ax
