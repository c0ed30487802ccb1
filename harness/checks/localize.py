"""From failed checks to origins: which layer and which quantity makes each fault.

An origin is a check that fails in isolated mode (the layer fed the reference's input and
upstream gradient): the fault is made there. A check that fails only in chain mode shows how
far an origin spreads. Origins are listed in forward order (H1 .. out, then the loss) and in
backward order (the loss, out .. H1), and the first of each is named.
"""

from __future__ import annotations

from harness.checks.compare import FAIL
from harness.report.text import SIDE_QUANTITIES, fmt

FORWARD = ("H1", "H2", "H3", "out", "loss")
# what the map axis of a layer's input gradient counts
INPUT_OF = {"H2": "H1 maps", "H3": "H2 maps", "out": "H3 units"}
QUANT = ("activation", "weight_grad", "bias_grad", "input_grad", "loss_grad", "runs",
         "params_unchanged")


def _key(c, order):
    lo = order.index(c.layer) if c.layer in order else len(order)
    qo = QUANT.index(c.quantity) if c.quantity in QUANT else len(QUANT)
    return (lo, qo)


def origins(report) -> list:
    """Failed isolated checks, one per (layer, quantity), in forward order."""
    seen, out = set(), []
    for c in sorted(report.checks, key=lambda c: _key(c, FORWARD)):
        if c.status == FAIL and c.mode == "isolated" and (c.layer, c.quantity) not in seen:
            seen.add((c.layer, c.quantity))
            out.append(c)
    return out


def spread(report) -> list:
    """(layer, quantity) that fail end to end but are not origins."""
    own = {(c.layer, c.quantity) for c in origins(report)}
    return sorted({(c.layer, c.quantity) for c in report.checks
                   if c.status == FAIL and c.mode == "chain"
                   and (c.layer, c.quantity) not in own and c.quantity not in SIDE_QUANTITIES},
                  key=lambda t: (FORWARD.index(t[0]) if t[0] in FORWARD else 9, t[1]))


def describe(c) -> str:
    where = ""
    if c.worst_index is not None and c.n:
        where = f", worst at {tuple(c.worst_index)}"
    maps = ""
    if c.failing_groups and c.layer in ("H1", "H2") and c.quantity != "input_grad":
        maps = f", kernels/maps {', '.join(map(str, c.failing_groups))}"
    elif c.failing_groups and c.quantity == "input_grad" and c.layer in INPUT_OF:
        maps = f", {INPUT_OF[c.layer]} {', '.join(map(str, c.failing_groups))}"
    if c.n == 0:
        return f"{c.layer} {c.quantity} vs {c.against}: {c.reason}"
    hint = f"; likely cause: {c.hint}" if c.hint else ""
    return (f"{c.layer} {c.quantity} vs {c.against}: max rel {fmt(c.max_rel)}, max abs "
            f"{fmt(c.max_abs)}, {c.n_fail}/{c.n} entries out of tolerance{where}{maps}{hint}")


def summarize(report) -> dict:
    o = origins(report)
    back = sorted(o, key=lambda c: _key(c, tuple(reversed(FORWARD))))
    return {
        "origins": [{"layer": c.layer, "quantity": c.quantity, "against": c.against,
                     "max_rel": c.max_rel, "max_abs": c.max_abs,
                     "worst_index": list(c.worst_index) if c.worst_index else None,
                     "failing_groups": c.failing_groups, "reason": c.reason,
                     "hint": c.hint} for c in o],
        "first_origin_forward": f"{o[0].layer} {o[0].quantity}" if o else None,
        "first_origin_backward": f"{back[0].layer} {back[0].quantity}" if o else None,
        "spread": [f"{layer} {q}" for layer, q in spread(report)],
    }


def origin_sections(report, layer_names, unmapped) -> list[tuple[str, str]]:
    """Markdown sections; also stores the summary under report.sections['localization']."""
    s = summarize(report)
    report.sections["localization"] = s
    o = origins(report)
    lines = [f"- first origin in forward order: **{s['first_origin_forward'] or 'none'}**",
             f"- first origin in backward order: **{s['first_origin_backward'] or 'none'}**",
             ""]
    lines += [f"- {describe(c)}" for c in o] or ["- none: every isolated check passed"]
    console = []
    if o:
        console.append("faults (origins), forward order:")
        console += [f"  {describe(c)}" for c in o]
        console.append(f"first origin in forward order: {s['first_origin_forward']}; "
                       f"in backward order: {s['first_origin_backward']}")
    else:
        console.append("faults (origins): none")
    if s["spread"]:
        console.append("spread end to end (not origins): " + ", ".join(s["spread"]))
    if unmapped:
        console.append("checked against their own forward only (no mapping to the paper's "
                       "layer): " + ", ".join(f"{k} ({v})" for k, v in unmapped.items()))
    report.sections.setdefault("console_sections", [])
    report.sections["console_sections"] += console
    sec = [("Faults: where each one starts", "\n".join(lines))]
    sec.append(("Spread: what fails end to end but is not an origin",
                "\n".join(f"- {x}" for x in s["spread"]) or "- nothing beyond the origins"))
    if unmapped:
        sec.append(("Layers not compared with the paper's (checked against their own "
                    "forward)", "\n".join(f"- {k}: {v}" for k, v in unmapped.items())))
    return sec
