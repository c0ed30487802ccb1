"""Check a candidate layer by layer and localize each fault's origin.

Isolated mode (origins): every candidate layer is fed the reference's own input for that
layer and the reference's upstream gradient, so a fault is charged to the layer that makes
it, not to every layer after it. Each layer is checked
    - against the reference layer, when its parameters map onto the paper's (`maps_to`):
      activation, weight, bias and input gradient ("cand vs ref (isolated)");
    - always, against central differences of its OWN forward with the objective
      <dy, forward(x)> ("cand vs own FD (isolated)"), so layers that cannot be compared with
      the paper's are still checked.
The loss is a layer too: its derivative is checked against differences of the loss value
the candidate reports, and against the reference's when targets and loss are declared equal.

Chain mode (spread): the candidate is fed by itself, end to end, and each layer's
gradients are compared with the reference's chain where every layer up to it maps, and with
directional central differences of the candidate's own total loss along random directions
(the fast screen of gradcheck: v^T g against (E(theta + h v) - E(theta - h v)) / 2h).

Candidate code runs under harness.checks.guard: an exception, a hang, NaN, a wrong shape or a None
gradient becomes a finding in the report, never a crash. Candidate checks run one pattern at
a time, as from-scratch code usually does.
"""

from __future__ import annotations

import numpy as np

from harness.checks.compare import FAIL, NOT_RUN, PASS, Check, compare, not_run
from harness.checks.finite_diff import central_diff, sample_entries
from harness.checks.guard import CallFailed, call, exits_refused
from harness.checks.tolerance import fd_step, tolerance_for
from reference.numpy_net import NumpyNet
from reference.params import Params, init_params
from reference.spec import NetSpec

GRAD_NAMES = (("weight_grad", "w"), ("bias_grad", "b"))
N_DIRECTIONS = 3
# A layer that maps onto the paper's is compared with the reference on every entry; its own
# finite differences are then a second opinion, taken on a sample to keep the run short.
# A layer that does not map gets finite differences on every entry.
MAPPED_FD_SAMPLE = 96


class _Run:
    """State of one candidate check: the candidate, the reference, tolerances, findings."""

    def __init__(self, report, cand, ref, timeout, progress, dtype="float64"):
        self.report, self.cand, self.ref = report, cand, ref
        self.timeout, self.progress = timeout, progress or (lambda d, t: None)
        self.dt = np.dtype(dtype)
        self.t_ref = tolerance_for("reference", self.dt)
        self.t_fd = tolerance_for("self_fd", self.dt)
        self.cand_dt = cand  # the build whose analytic results are checked (float32 mode)
        self.dead = None  # set when a call hung: nothing more is called

    def call(self, fn, *args, where):
        if self.dead:
            raise CallFailed(where, f"not called: {self.dead}", skipped=True)
        try:
            return call(fn, *args, where=where, timeout=self.timeout)
        except CallFailed as e:
            if e.hung:
                self.dead = f"{e.where} hung earlier"
            raise

    def add(self, check: Check):
        self.report.checks.append(check)

    def failed(self, e: CallFailed, layer: str, mode: str, rows, context: str = ""):
        """A call failed: a `runs` finding (unless the call was skipped because an earlier
        one hung), and every check it would have fed, `rows` of (quantity, against), as
        NOT RUN with the reason, so that none goes missing from the table or the counts."""
        reason = f"{context}{e}"
        if not e.skipped:
            self.add(Check(layer, "runs", "protocol", FAIL, "candidate", mode=mode,
                           reason=reason))
        for lay, q, against in rows:
            self.add(not_run(lay, q, against, f"not run: {reason}", subject="candidate",
                             mode=mode))


def _fd_rows(layer: str, input_grad: bool):
    """(layer, quantity, against) of the checks against a layer's own finite differences."""
    qs = [q for q, _ in GRAD_NAMES] + (["input_grad"] if input_grad else [])
    return [(layer, q, "self_fd") for q in qs]


def _ref_rows(layer: str, input_grad: bool):
    """(layer, quantity, against) of the comparisons of a mapped layer with the reference."""
    qs = ["activation"] + [q for q, _ in GRAD_NAMES] + (["input_grad"] if input_grad else [])
    return [(layer, q, "reference") for q in qs]


def _params_of(run, layer):
    p = run.call(layer.get_params, where=f"{layer.name}.get_params")
    return {k: np.array(v, dtype=np.float64, order="C", copy=True)
            for k, v in (p or {}).items()}


def _checksum(arrays: dict) -> str:
    import hashlib

    h = hashlib.sha256()
    for k in sorted(arrays):
        h.update(k.encode())
        h.update(np.ascontiguousarray(arrays[k], dtype=np.float64).tobytes())
    return h.hexdigest()


def _own_fd(run, layer, x, dy, params, limit=None):
    """FD of <dy, layer.forward(x)> wrt each parameter array and wrt x; with `limit`, on a
    seeded sample of at most that many entries per array (NaN elsewhere)."""
    where = f"{layer.name}.forward"

    def objective(xx=None):
        y = run.call(layer.forward, x if xx is None else xx, where=where)
        return float(np.sum(np.asarray(y, dtype=np.float64).reshape(dy.shape) * dy))

    current = {k: v.copy() for k, v in params.items()}
    grads = {}
    try:
        for k in current:
            grads[k] = central_diff(
                objective, current[k],
                on_change=lambda: layer.set_params({q: a.copy() for q, a in current.items()}),
                entries=sample_entries(current[k].size, limit))
    finally:
        run.call(layer.set_params, {k: v.copy() for k, v in params.items()},
                 where=f"{layer.name}.set_params")
    xp = np.array(x, dtype=np.float64, order="C", copy=True)
    grads["x"] = central_diff(lambda: objective(xp), xp,
                              entries=sample_entries(xp.size, limit))
    return grads


def run_candidate_checks(report, cand_ref, preset_spec: NetSpec, params: Params | None,
                         x, y, timeout=120.0, progress=None, seed=0,
                         dtype="float64") -> None:
    """Fill `report` with the candidate's checks and sections (never raises for bad
    candidates; a load failure is a failed `load` check). `cand_ref` is a name or path for
    candidates.loader, or a candidate object.

    dtype "float32": the candidate's `with_dtype(np.float32)` build, holding the same
    parameters, gives the analytic results; finite differences come from the float64 build;
    the float32 tolerances apply; the chain checks run in float64 only (NOT RUN here)."""
    with exits_refused():
        _run_candidate_checks(report, cand_ref, preset_spec, params, x, y, timeout, progress,
                              seed, dtype)


def _run_candidate_checks(report, cand_ref, preset_spec, params, x, y, timeout, progress,
                          seed, dtype):
    from candidates.loader import CandidateLoadError, load_candidate
    from harness.checks.conformance import conformance_rows, conformance_table, to_markdown

    try:  # importing and building run the user's code too: under the same timeout
        cand = cand_ref if not isinstance(cand_ref, str) else call(
            lambda: load_candidate(cand_ref, seed=seed), where=f"loading {cand_ref}",
            timeout=timeout)
    except CallFailed as e:
        why = str(e.exc) if isinstance(e.exc, CandidateLoadError) else str(e)
        report.checks.append(Check("all", "load", "protocol", status=FAIL,
                                   subject="candidate", reason=why))
        report.sections["load_error"] = why
        return
    declared = getattr(cand, "spec", None)
    spec = declared if isinstance(declared, NetSpec) else preset_spec
    try:
        # explicit parameters (--params) win; otherwise a seeded set from the declared spec
        shared = params if params is not None else init_params(spec, seed)
    except ValueError:
        # its structure is not the paper's (e.g. 4x4 kernels): the paper's reference still
        # provides each layer's input and upstream gradient
        report.notes.append(f"the candidate's declared structure is not the paper's (so its "
                            f"layers are checked against their own forward); the reference "
                            f"that feeds them inputs and upstream gradients uses the "
                            f"{preset_spec.name!r} preset")
        spec = preset_spec
        shared = params if params is not None else init_params(spec, seed)
    report.preset = spec.name
    ref = NumpyNet(spec, shared)
    run = _Run(report, cand, ref, timeout, progress, dtype)
    before = shared.checksum()

    layers = list(cand.layers)
    names = [getattr(l, "name", f"layer{i}") for i, l in enumerate(layers)]
    unmapped, given = {}, {}
    for layer in layers:
        m = getattr(layer, "maps_to", None)
        if m is None:
            unmapped[layer.name] = getattr(layer, "why_unmapped", "maps_to is None: its "
                                           "parameters have no declared mapping to the paper's")
            continue
        try:
            where = f"{layer.name}.from_reference"
            if m not in ("H1", "H2", "H3", "out"):
                raise CallFailed(where, f"maps_to is {m!r}; expected one of the paper's layers "
                                 "H1, H2, H3, out (or None)")
            mine = run.call(layer.from_reference,
                            {"w": shared[f"{m}.w"].copy(), "b": shared[f"{m}.b"].copy()},
                            where=where)
            if not isinstance(mine, dict):
                raise CallFailed(where, f"returned {type(mine).__name__}; expected a dict of "
                                 "the layer's own parameter arrays")
            try:
                given[layer.name] = (mine, _checksum(mine))
            except (TypeError, ValueError) as e:
                raise CallFailed(where, f"returned values that are not numeric arrays ({e})")
            run.call(layer.set_params, mine, where=f"{layer.name}.set_params")
        except CallFailed as e:
            # a declared mapping that does not work is a finding, never a silent fallback
            run.add(Check(layer.name, "runs", "protocol", FAIL, "candidate", mode="isolated",
                          reason=f"maps_to={m!r} is declared, but {e}"))
            unmapped[layer.name] = "its declared mapping to the paper's parameters failed"

    if any(name not in unmapped for name in names):
        report.notes.append(f"layers that map onto the paper's are compared with the reference "
                            f"on every entry; their own finite differences are a second "
                            f"opinion on a seeded sample of up to {MAPPED_FD_SAMPLE} entries "
                            f"per tensor")
    layers_dt = None
    if run.dt != np.float64:
        layers_dt = _other_dtype_build(run, cand, layers)
        if layers_dt is None:
            return
    x = np.asarray(x, dtype=np.float64)
    for n in range(len(x)):
        _isolated(run, layers, x[n:n + 1], np.asarray(y)[n:n + 1], unmapped, layers_dt)
        if layers_dt is None:
            _chain(run, layers, x[n:n + 1], np.asarray(y)[n:n + 1], unmapped, seed + n)
        run.progress(n + 1, len(x))
    if layers_dt is not None:
        run.add(not_run("all", "chain", "self_fd", f"end-to-end checks run in float64 only; "
                        f"the {run.dt.name} run checks every layer in isolation",
                        subject="candidate", mode="chain"))
    _merge_patterns(report)
    _hint_self_consistent(report, [n for n in names if n not in unmapped])

    for name, (arrays, digest) in given.items():
        if _checksum(arrays) != digest:
            run.add(Check(name, "params_unchanged", "checksum", FAIL, "candidate",
                          reason="the candidate changed, in place, the weight arrays the "
                          "harness gave it with set_params (checksum before != after)"))
    ok = shared.checksum() == before
    run.add(Check("all", "params_unchanged", "checksum", PASS if ok else FAIL,
                  "shared parameters",
                  reason="" if ok else "the shared parameter set changed during the run"))
    from harness.checks.localize import origin_sections

    rows = conformance_rows(cand)
    report.sections["conformance"] = [
        {"choice": r, "paper": p, "candidate": c, "same": same} for r, p, c, same in rows]
    report.sections["not_compared_with_paper"] = unmapped
    report.sections.setdefault("markdown_sections", [])
    report.sections["markdown_sections"] += origin_sections(report, names, unmapped)
    report.sections["markdown_sections"].append(
        ("Conformance with the paper (differences are choices, not faults)",
         to_markdown(rows)))
    report.sections["console_sections"].append(conformance_table(rows))


def _other_dtype_build(run, cand, layers):
    """The candidate's build in run.dt with the float64 build's parameters, or None (and a
    NOT RUN check) when it offers none."""
    make = getattr(cand, "with_dtype", None)
    if not callable(make):
        run.add(not_run("all", "runs", "protocol", f"the candidate has no with_dtype(); a "
                        f"{run.dt.name} check needs a build of it in that dtype",
                        subject="candidate"))
        return None
    try:
        other = run.call(make, run.dt.type, where="with_dtype")
        for a, b in zip(layers, other.layers, strict=True):
            run.call(b.set_params, _params_of(run, a), where=f"{b.name}.set_params")
    except (CallFailed, ValueError) as e:
        run.add(Check("all", "runs", "protocol", FAIL, "candidate", reason=str(e)))
        return None
    run.cand_dt = other
    return list(other.layers)


def _isolated(run, layers, x, labels, unmapped, layers_dt=None):
    ref = run.ref
    h, ins, outs = x, [], []
    for rl in ref.layers:
        ins.append(h)
        h = rl.forward(h)
        outs.append(h)
    dys = [None] * len(ref.layers)
    dy = ref.loss.grad(h, labels)
    dys[-1] = dy
    ref_grads = []
    for i in reversed(range(len(ref.layers))):
        dx, g = ref.layers[i].backward(dys[i])
        ref_grads.insert(0, (dx, g))
        if i:
            dys[i - 1] = dx
    for i, layer in enumerate(layers):
        L = layer.name
        if i >= len(ref.layers):
            run.add(not_run(L, "activation", "reference", "the reference has no such layer",
                            subject="candidate", mode="isolated"))
            continue
        xi, dyi = ins[i], dys[i]
        tested = layer if layers_dt is None else layers_dt[i]  # analytic results from here
        xt, dyt = xi.astype(run.dt), dyi.astype(run.dt)
        mapped = layer.name not in unmapped
        rows = (_ref_rows(L, i > 0) if mapped else []) + _fd_rows(L, True)
        try:
            params = _params_of(run, layer)
            before = _checksum(_params_of(run, tested))
            yv = run.call(tested.forward, xt.copy(), where=f"{L}.forward")
        except CallFailed as e:
            run.failed(e, L, "isolated", rows)
            continue
        if mapped:  # the forward ran: its activation is compared even if backward fails
            run.add(compare(yv, outs[i], run.t_ref, L, "activation", "reference",
                            subject="candidate", mode="isolated", group_axis=1))
        try:
            dx, g = run.call(tested.backward, xt.copy(), dyt.copy(), where=f"{L}.backward")
            after = _checksum(_params_of(run, tested))
        except CallFailed as e:
            run.failed(e, L, "isolated", [r for r in rows if r[1] != "activation"])
            continue
        if after != before:
            run.add(Check(L, "params_unchanged", "checksum", FAIL, "candidate",
                          mode="isolated", reason="forward/backward changed the weights it "
                          "was given (checksum before != after)"))
        g = g or {}
        if mapped:
            given_g = {k: v for k, v in g.items() if v is not None}
            gr = _to_reference(run, layer, given_g) if given_g else {}
            rdx, rg = ref_grads[i]
            w = (gr or {}).get("w")
            if L == "H1" and w is not None and np.size(w) == rg["w"].size:
                diff = np.asarray(w, dtype=np.float64).reshape(rg["w"].shape) - rg["w"]
                if np.all(np.isfinite(diff)):  # for the HTML heatmaps (first pattern)
                    run.report.sections.setdefault("h1_kernel_grad_diff",
                                                   diff[:, 0].tolist())
            for q, k in GRAD_NAMES:
                if gr is not None:  # None: to_reference failed, its checks are NOT RUN
                    run.add(compare(gr.get(k), rg[k], run.t_ref, L, q, "reference",
                                    subject="candidate", mode="isolated"))
            if i > 0:
                run.add(compare(dx, rdx, run.t_ref, L, "input_grad", "reference",
                                subject="candidate", mode="isolated", group_axis=1))
        try:
            # at the inputs the tested build saw, so that only its arithmetic differs
            fd = _own_fd(run, layer, xt.astype(np.float64), dyt.astype(np.float64), params,
                         limit=MAPPED_FD_SAMPLE if mapped else None)
        except CallFailed as e:
            run.failed(e, L, "isolated", _fd_rows(L, True), "during finite differences: ")
            continue
        w, fw = g.get("w"), fd.get("w")
        if L == "H1" and w is not None and fw is not None and np.size(w) == 300 \
                and not np.isnan(fw).any() and np.all(np.isfinite(w)):
            # for the HTML heatmaps when H1 does not map: its error against its own forward
            diff = np.asarray(w, dtype=np.float64).reshape(12, 5, 5) - fw.reshape(12, 5, 5)
            if "h1_kernel_grad_diff" not in run.report.sections:
                run.report.sections["h1_kernel_grad_diff"] = diff.tolist()
                run.report.sections["h1_kernel_grad_diff_against"] = "own finite differences"
        for q, k in GRAD_NAMES:
            if k not in fd:
                run.add(not_run(L, q, "self_fd", f"the layer has no parameter {k!r}",
                                subject="candidate", mode="isolated"))
                continue
            run.add(_compare_sampled(g.get(k), fd[k], run.t_fd, L, q))
        if dx is None and i == 0:
            run.add(not_run(L, "input_grad", "self_fd", "the first layer returned no input "
                            "gradient (not needed for training)", subject="candidate",
                            mode="isolated"))
        else:
            run.add(_compare_sampled(dx, fd["x"], run.t_fd, L, "input_grad", group_axis=1))
    _loss_checks(run, outs[-1], labels)


def _to_reference(run, layer, grads):
    """The layer's gradients in the reference's layout, or None after recording the failure
    (a finding) and its reference comparisons as NOT RUN."""
    where = f"{layer.name}.to_reference"
    try:
        gr = run.call(layer.to_reference, grads, where=where)
        if not isinstance(gr, dict):
            raise CallFailed(where, f"returned {type(gr).__name__}; expected a dict with the "
                             "reference's 'w' and 'b'")
        return gr
    except CallFailed as e:
        run.failed(e, layer.name, "isolated",
                   [(layer.name, q, "reference") for q, _ in GRAD_NAMES])
        return None


def _compare_sampled(obtained, fd, tol, layer, quantity, group_axis=0):
    """Compare on the entries the finite differences were taken at (all, or a sample).
    A sample is compared in place: the entries not taken are set equal on both sides, so
    indices ("worst at", kernels/maps) are the tensor's own; NaN or Inf anywhere in the
    obtained tensor still fails."""
    kw = dict(subject="candidate", mode="isolated", group_axis=group_axis)
    taken = ~np.isnan(fd)
    if taken.all() or obtained is None or np.size(obtained) != fd.size:
        return compare(obtained, fd, tol, layer, quantity, "self_fd", **kw)
    try:
        a = np.asarray(obtained, dtype=np.float64).reshape(fd.shape)
    except (TypeError, ValueError):
        return compare(obtained, fd, tol, layer, quantity, "self_fd", **kw)
    keep = taken | ~np.isfinite(a)
    c = compare(np.where(keep, a, 0.0), np.where(taken, fd, 0.0), tol, layer, quantity,
                "self_fd", **kw)
    c.n = int(taken.sum())
    c.reason = (c.reason + "; " if c.reason else "") + (
        f"finite differences on a seeded sample of {c.n} of {fd.size} entries "
        "(every entry is compared with the reference)")
    return c


def _loss_checks(run, y_out, labels):
    cand = run.cand
    yt = y_out.astype(run.dt)
    try:
        g = run.call(run.cand_dt.loss_grad, yt.copy(), labels, where="loss_grad")
        yp = yt.astype(np.float64)
        fd = central_diff(lambda: float(run.call(cand.loss, yp, labels, where="loss")), yp)
    except CallFailed as e:
        run.failed(e, "loss", "isolated", [("loss", "loss_grad", "self_fd")])
        return
    # the loss gradient if every output were off by 1: the scale of rounding near the target
    unit = 2.0 / max(yt.size, 1)
    run.add(compare(g, fd, run.t_fd, "loss", "loss_grad", "self_fd", subject="candidate",
                    mode="isolated", signal_scale=unit))
    if not _same_loss_declared(cand, run.ref.spec):
        return  # other targets or loss are a choice (the conformance table), not a fault
    ref_loss = run.ref.loss
    try:
        E = run.call(run.cand_dt.loss, yt.copy(), labels, where="loss")
    except CallFailed as e:
        run.failed(e, "loss", "isolated", [("loss", "activation", "reference"),
                                           ("loss", "loss_grad", "reference")])
        return
    y64 = yt.astype(np.float64)
    run.add(compare(np.array([E], dtype=float), np.array([ref_loss.value(y64, labels)]),
                    run.t_ref, "loss", "activation", "reference", subject="candidate",
                    mode="isolated"))
    run.add(compare(g, ref_loss.grad(y64, labels), run.t_ref, "loss", "loss_grad",
                    "reference", subject="candidate", mode="isolated", signal_scale=unit))


def _same_loss_declared(cand, spec: NetSpec) -> bool:
    """The candidate declares a spec whose targets and loss are the reference's: then its
    loss value and derivative must be the reference's too."""
    mine = getattr(cand, "spec", None)
    return isinstance(mine, NetSpec) and (mine.target_on, mine.target_off, mine.loss) == \
        (spec.target_on, spec.target_off, spec.loss)


def _chain(run, layers, x, labels, unmapped, seed):
    """The candidate fed by itself; directional FD of its own loss for every gradient.
    Each layer is handed numpy arrays (what it returned, as an array), as in isolated mode."""
    cand = run.cand

    def forward_from(i, h):
        for layer in layers[i:]:
            h = np.asarray(run.call(layer.forward, h, where=f"{layer.name}.forward"))
        return float(run.call(cand.loss, h, labels, where="loss"))

    try:
        ins, h = [], x
        for layer in layers:
            ins.append(np.asarray(h, dtype=np.float64))
            h = np.asarray(run.call(layer.forward, h, where=f"{layer.name}.forward"))
        dy = run.call(cand.loss_grad, h, labels, where="loss_grad")
        grads = [None] * len(layers)
        for i in reversed(range(len(layers))):
            dx, g = run.call(layers[i].backward, ins[i], np.asarray(dy),
                             where=f"{layers[i].name}.backward")
            grads[i] = (dx, g or {})
            if dx is None and i > 0:
                raise CallFailed(f"{layers[i].name}.backward", "returned no input gradient, "
                                 "so the chain cannot go on")
            dy = dx
    except CallFailed as e:
        run.failed(e, "all", "chain", [r for i, layer in enumerate(layers)
                                       for r in _fd_rows(layer.name, i > 0)])
        return
    start = len(run.report.checks)
    try:
        _chain_checks(run, layers, x, ins, grads, forward_from, np.random.default_rng(seed))
    except CallFailed as e:
        done = {(c.layer, c.quantity) for c in run.report.checks[start:]}
        rest = [r for i, layer in enumerate(layers) for r in _fd_rows(layer.name, i > 0)
                if r[:2] not in done]
        run.failed(e, "all", "chain", rest)


def _chain_checks(run, layers, x, ins, grads, forward_from, rng):
    """Each chain gradient against directional central differences of the total loss."""
    for i, layer in enumerate(layers):
        dx, g = grads[i]
        params = _params_of(run, layer)
        targets = [(q, k, params[k], g.get(k)) for q, k in GRAD_NAMES if k in params]
        if i > 0:
            targets.append(("input_grad", "x", ins[i], dx))
        for q, k, base, analytic in targets:
            if analytic is None or np.shape(analytic) != base.shape and \
                    np.size(analytic) != base.size:
                run.add(compare(analytic, base, run.t_fd, layer.name, q, "self_fd",
                                subject="candidate", mode="chain"))
                continue
            a = np.asarray(analytic, dtype=np.float64).reshape(base.shape)
            proj, fdv = [], []
            for _ in range(N_DIRECTIONS):
                v = rng.standard_normal(base.shape)
                v /= np.linalg.norm(v)
                h = fd_step(float(np.max(np.abs(base))) if base.size else 0.0)
                up = _shifted(run, layer, k, params, base, v * h, i, x, forward_from)
                down = _shifted(run, layer, k, params, base, -v * h, i, x, forward_from)
                fdv.append((up - down) / (2 * h))
                proj.append(float(np.sum(a * v)))
            c = compare(np.array(proj), np.array(fdv), run.t_fd, layer.name, q, "self_fd",
                        subject="candidate", mode="chain", group_axis=None)
            c.reason = (c.reason + "; " if c.reason else "") + (
                f"along {N_DIRECTIONS} random directions v: v.g against directional "
                "differences of the candidate's own loss (entries are directions)")
            run.add(c)


def _shifted(run, layer, k, params, base, delta, i, x, forward_from):
    """The candidate's total loss with parameter k (or layer i's input, k == "x") moved by
    delta; parameters are put back afterwards."""
    if k == "x":
        return forward_from(i, base + delta)
    moved = {q: a.copy() for q, a in params.items()}
    moved[k] = base + delta
    run.call(layer.set_params, moved, where=f"{layer.name}.set_params")
    try:
        return forward_from(0, x)
    finally:
        run.call(layer.set_params, {q: a.copy() for q, a in params.items()},
                 where=f"{layer.name}.set_params")


SELF_CONSISTENT = ("its gradients agree with its own forward, yet every comparison with the "
                   "reference fails: look at its forward or its from_reference/to_reference "
                   "mapping (a transposed or reordered layout?)")


def _hint_self_consistent(report, mapped_layers):
    """A mapped layer that fails every reference comparison but passes every check against
    its own forward is self-consistent: say so on its reference checks."""
    for name in mapped_layers:
        mine = [c for c in report.checks if c.layer == name and c.mode == "isolated"
                and c.status != NOT_RUN and c.quantity not in ("runs", "params_unchanged")]
        ref = [c for c in mine if c.against == "reference"]
        own = [c for c in mine if c.against == "self_fd"]
        if ref and own and all(c.status == FAIL for c in ref) \
                and all(c.status == PASS for c in own):
            for c in ref:
                c.hint = SELF_CONSISTENT + (f"; {c.hint}" if c.hint else "")


def _merge_patterns(report):
    """One check per (layer, quantity, against, mode): the worst pattern's figures."""
    merged, order = {}, []
    for c in report.checks:
        key = (c.layer, c.quantity, c.subject, c.against, c.mode)
        if key not in merged:
            merged[key] = c
            order.append(key)
            continue
        old = merged[key]
        rank = {FAIL: 2, NOT_RUN: 1, PASS: 0}
        worse = (rank[c.status], _num(c.ratio)) > (rank[old.status], _num(old.ratio))
        if worse:
            merged[key] = c
    report.checks[:] = [merged[k] for k in order]


def _num(v):
    return v if isinstance(v, float) and v == v else 0.0
