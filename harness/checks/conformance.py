"""Declared choices side by side with the `paper` preset. A difference is not a fault.

Rows: activation, init range and fan-in, targets, kernel sizes and sharing, the 8-of-12
table, biases, loss scaling, learning rate, training set size. A candidate describes itself
with a NetSpec (`spec`) and may override any row in words with `declared_choices()`.
"""

from __future__ import annotations

import numpy as np

from reference.spec import BLOCK_TABLE, NetSpec, paper

ROWS = ("activation", "init range and fan-in", "targets", "kernel sizes and sharing",
        "8-of-12 table", "biases", "loss scaling", "learning rate", "training set size")


def _table_name(T: np.ndarray) -> str:
    if np.array_equal(T, BLOCK_TABLE):
        return "block table of karpathy/lecun1989-repro"
    rows = ["".join("x" if v else "." for v in r) for r in np.asarray(T, dtype=bool)]
    return "custom: " + " ".join(rows)


def describe(spec: NetSpec) -> dict[str, str]:
    s = spec
    if (s.act_amplitude, s.act_slope) == (1.0, 1.0):
        act = "tanh(a)"
    else:
        act = f"{s.act_amplitude:g} tanh({s.act_slope:.4g} a)"
    root = "F" if s.init_fanin_power == 1 else f"F^{s.init_fanin_power:g}"
    bias = {"uniform_fanin": "drawn like the unit's weights",
            "zero_hidden_out_minus1": "hidden 0, output -1"}.get(s.bias_init, s.bias_init)
    return {
        "activation": act,
        "init range and fan-in": f"U[-{s.init_scale:g}/{root}, {s.init_scale:g}/{root}], "
        f"F = kernel fan-in (H1 {s.fan_in('H1')}, H2 {s.fan_in('H2')}, "
        f"H3 {s.fan_in('H3')}, out {s.fan_in('out')})",
        "targets": f"{s.target_off:g} / {s.target_on:g}",
        "kernel sizes and sharing": f"H1 {s.h1_kernel}x{s.h1_kernel}, H2 {s.h2_kernel}x"
        f"{s.h2_kernel} over {s.h2_inputs_per_map} maps; {s.weight_sharing}",
        "8-of-12 table": _table_name(s.h2_table),
        "biases": f"{s.bias_tying}; init: {bias}",
        "loss scaling": {"mse_mean": "MSE, mean over patterns and output units"}.get(
            s.loss, s.loss),
        "learning rate": f"{s.learning_rate:g}",
        "training set size": f"{s.train_size}",
    }


def conformance_rows(candidate) -> list[tuple[str, str, str, bool]]:
    """(row, paper, candidate, same) for every row."""
    ref = describe(paper())
    spec = getattr(candidate, "spec", None)
    mine = describe(spec) if isinstance(spec, NetSpec) else {r: "not declared" for r in ROWS}
    declared = getattr(candidate, "declared_choices", None)
    if callable(declared):
        try:
            mine.update({k: str(v) for k, v in declared().items()})
        except Exception as e:  # noqa: BLE001 - user code
            mine = {r: f"declared_choices() raised {type(e).__name__}" for r in ROWS}
    return [(r, ref[r], mine.get(r, "not declared"), mine.get(r) == ref[r]) for r in ROWS]


def to_markdown(rows) -> str:
    out = ["| choice | paper | candidate | match |", "|---|---|---|---|"]
    for r, p, c, same in rows:
        out.append(f"| {r} | {p} | {c} | {'same' if same else 'DIFFERS'} |")
    return "\n".join(out)


def conformance_table(rows):
    """A rich Table for the console (rendering only; nothing is printed here)."""
    from rich.table import Table
    from rich.text import Text

    t = Table(title="conformance with the paper (a difference is a choice, not a fault)")
    for col in ("choice", "paper", "candidate", ""):
        t.add_column(col, overflow="fold")
    for r, p, c, same in rows:  # Text: a candidate's own words are never read as markup
        t.add_row(Text(r), Text(p), Text(c), "same" if same else "[yellow]DIFFERS[/]")
    return t
