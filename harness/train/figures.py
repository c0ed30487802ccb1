"""PNG figures of the training reports (matplotlib, Agg backend; no display needed).

Every function takes plain numbers (records, arrays) and a path, and returns the path.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

PAPER_FINAL = {"train": {"mse": 2.5e-3, "error_pct": 0.14},
               "test": {"mse": 1.8e-2, "error_pct": 5.0}}
PAPER_PASSES = 23
PAPER_REJECT_PCT = 12.1
COLORS = {"train": "tab:blue", "test": "tab:red", "holdout": "tab:green"}


def _save(fig, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def learning_curves(records: list[dict], title: str, path) -> Path:
    """Error % and MSE per pass for each split, with the paper's final figures marked."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, q, label in ((axes[0], "error_pct", "error (%)"), (axes[1], "mse", "MSE")):
        for split in ("train", "test", "holdout"):
            rs = [r for r in records if r["split"] == split]
            if rs:
                ax.plot([r["pass"] for r in rs], [r[q] for r in rs], "-o", ms=3,
                        color=COLORS[split], label=split)
            if split in PAPER_FINAL:
                ax.plot([PAPER_PASSES], [PAPER_FINAL[split][q]], "*", ms=14,
                        color=COLORS[split], markeredgecolor="k",
                        label=f"paper {split} (pass 23)")
        ax.set_yscale("log")
        ax.set_xlabel("pass")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    return _save(fig, path)


def rejection_curve(curves: dict[str, tuple[np.ndarray, np.ndarray]], title: str,
                    path, marks: dict[str, float] | None = None) -> Path:
    """Test error % against % rejected (lowest top-two margin first), one line per run."""
    fig, ax = plt.subplots(figsize=(6, 4.2))
    for label, (rej, err) in curves.items():
        ax.plot(rej, err, label=label)
    ax.axhline(1.0, color="grey", ls="--", lw=1, label="1% error")
    ax.axvline(PAPER_REJECT_PCT, color="k", ls=":", lw=1,
               label=f"paper: {PAPER_REJECT_PCT}% rejected")
    for label, x in (marks or {}).items():
        ax.plot([x], [1.0], "o", ms=6, label=label)
    ax.set_xlim(0, 40)
    ax.set_ylim(0, None)
    ax.set_xlabel("test digits rejected (%)")
    ax.set_ylabel("error on accepted test digits (%)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title(title)
    return _save(fig, path)


def confusion(cm: np.ndarray, title: str, path) -> Path:
    """Rows: true digit; columns: predicted digit; counts written in the cells."""
    fig, ax = plt.subplots(figsize=(5.2, 4.6))
    off = cm.astype(float).copy()
    np.fill_diagonal(off, np.nan)
    ax.imshow(off, cmap="Reds")
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            if cm[i, j]:
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=7,
                        color="k" if i != j else "tab:blue")
    ax.set_xticks(range(10))
    ax.set_yticks(range(10))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    return _save(fig, path)


def lockstep_drift(runs: dict[str, list[dict]], path) -> Path:
    """Max relative parameter difference per layer after every pass, one panel per run."""
    fig, axes = plt.subplots(1, len(runs), figsize=(5 * len(runs), 4), squeeze=False)
    for ax, (label, per_pass) in zip(axes[0], runs.items()):
        passes = np.arange(1, len(per_pass) + 1)
        for L in per_pass[0]:
            ax.semilogy(passes, [d[L] for d in per_pass], "-o", ms=3, label=L)
        ax.set_xlabel("pass")
        ax.set_ylabel("max |ref - twin| / max |ref|")
        ax.set_title(label, fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    return _save(fig, path)
