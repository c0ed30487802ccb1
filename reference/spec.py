"""The 1989 network as one declarative spec: every choice named, with its source.

Paper: LeCun et al. (1989), "Backpropagation Applied to Handwritten Zip Code Recognition",
Neural Computation 1(4). Section numbers below refer to that text; "LeCun 1998" is
"Gradient-Based Learning Applied to Document Recognition" (Proc. IEEE), whose appendices
spell out the activation, the initialisation and the diagonal Newton optimizer.

Notation (mapped once, used in every reference module):
    x      input image, 16x16, values in [-1, 1]                     (paper Sec. 3)
    H1     12 feature maps of 8x8; 5x5 kernels, stride 2, shared     (paper Sec. 5.1)
    H2     12 feature maps of 4x4; 5x5 kernels over 8 of the 12 H1 maps
    H3     30 units, fully connected to H2
    out    10 output units, fully connected to H3
    w, b   a layer's weights and biases; biases are untied in H1 and H2 (one per unit)
    f      the squashing function, f(a) = A tanh(S a)
    a      a unit's total input (pre-activation)
    F      a unit's fan-in, used by the weight initialisation
    T      the connection table of H2: T[i, j] is True when H2 map i reads H1 map j

Every field of `NetSpec` has an entry in `NetSpec.sources`, either "paper" (with the
section) or "ASSUMPTION: <why>", so that reports can list every assumption.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

PAPER = "paper"


def _block_table() -> np.ndarray:
    """H2's 8-of-12 table used by the best-known reproduction (karpathy/lecun1989-repro).

    H2 maps 0-3 read H1 maps 0-7, maps 4-7 read H1 maps 4-11, maps 8-11 read H1 maps
    0-3 and 8-11. Returns a (12, 12) bool array T[h2_map, h1_map].
    """
    T = np.zeros((12, 12), dtype=bool)
    T[0:4, 0:8] = True
    T[4:8, 4:12] = True
    T[8:12, 0:4] = True
    T[8:12, 8:12] = True
    return T


BLOCK_TABLE = _block_table()


@dataclass(frozen=True)
class NetSpec:
    """Every choice of the network. Build one with `paper()` or `karpathy()`."""

    name: str
    # input
    input_size: int = 16
    input_range: tuple[float, float] = (-1.0, 1.0)
    # H1
    h1_maps: int = 12
    h1_size: int = 8
    h1_kernel: int = 5
    h1_stride: int = 2
    h1_pad: int = 2
    # H2
    h2_maps: int = 12
    h2_size: int = 4
    h2_kernel: int = 5
    h2_stride: int = 2
    h2_pad: int = 2
    h2_inputs_per_map: int = 8
    h2_table: np.ndarray = field(default_factory=lambda: BLOCK_TABLE.copy())
    # shared by both convolutional layers
    pad_value: float = -1.0
    weight_sharing: str = "one kernel per feature map"
    bias_tying: str = "untied in H1 and H2 (one bias per unit); one per unit in H3 and out"
    # dense layers
    h3_units: int = 30
    out_units: int = 10
    flatten_order: str = "C order over (map, row, col)"
    # f(a) = A tanh(S a)
    act_amplitude: float = 1.7159
    act_slope: float = 2.0 / 3.0
    # weights ~ U[-scale / F**power, +scale / F**power]
    init_scale: float = 2.4
    init_fanin_power: float = 1.0
    bias_init: str = "uniform_fanin"  # or "zero_hidden_out_minus1"
    # targets and loss
    target_on: float = 1.0
    target_off: float = -1.0
    loss: str = "mse_mean"
    # training (for conformance reports; the optimizer lives in harness/)
    learning_rate: float = 0.03
    train_size: int = 7291
    passes: int = 23
    sources: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        T = np.asarray(self.h2_table, dtype=bool)
        if T.shape != (self.h2_maps, self.h1_maps):
            raise ValueError(
                f"NetSpec {self.name!r}: h2_table must be ({self.h2_maps}, {self.h1_maps}) "
                f"bool, got shape {T.shape}"
            )
        per_map = T.sum(axis=1)
        if not np.all(per_map == self.h2_inputs_per_map):
            raise ValueError(
                f"NetSpec {self.name!r}: every H2 map must read {self.h2_inputs_per_map} H1 maps;"
                f" the table gives {per_map.tolist()}"
            )
        T.setflags(write=False)
        object.__setattr__(self, "h2_table", T)
        missing = [f for f in self.choice_names() if f not in self.sources]
        if missing:
            raise ValueError(f"NetSpec {self.name!r}: no source given for {missing}")
        for key, src in self.sources.items():
            if not (src.startswith(PAPER) or src.startswith("ASSUMPTION:")):
                raise ValueError(
                    f"NetSpec {self.name!r}: source of {key!r} must start with 'paper' or "
                    f"'ASSUMPTION:', got {src!r}"
                )

    @staticmethod
    def choice_names() -> list[str]:
        return [f.name for f in dataclasses.fields(NetSpec) if f.name not in ("name", "sources")]

    def choices(self) -> list[tuple[str, object, str]]:
        """(name, value, source) for every choice, in declaration order."""
        return [(n, getattr(self, n), self.sources[n]) for n in self.choice_names()]

    def assumptions(self) -> list[tuple[str, str]]:
        return [(n, s) for n, _, s in self.choices() if s.startswith("ASSUMPTION:")]

    def replace(self, **changes) -> "NetSpec":
        """A copy with some choices changed; pass `sources` entries for what you change."""
        srcs = dict(self.sources)
        srcs.update(changes.pop("sources", {}))
        return dataclasses.replace(self, sources=srcs, **changes)

    def to_dict(self) -> dict:
        out = {}
        for n, v, s in self.choices():
            if isinstance(v, np.ndarray):
                v = v.astype(int).tolist()
            out[n] = {"value": v, "source": s}
        return out

    # ---- counts the paper states (Sec. 5.1); asserted by reference.params ----
    def layer_param_counts(self) -> dict[str, int]:
        k1, k2 = self.h1_kernel**2, self.h2_kernel**2
        return {
            "H1": self.h1_maps * k1 + self.h1_maps * self.h1_size**2,
            "H2": self.h2_maps * self.h2_inputs_per_map * k2 + self.h2_maps * self.h2_size**2,
            "H3": self.h3_units * self.h2_maps * self.h2_size**2 + self.h3_units,
            "out": self.out_units * self.h3_units + self.out_units,
        }

    def unit_count(self) -> int:
        return (
            self.input_size**2
            + self.h1_maps * self.h1_size**2
            + self.h2_maps * self.h2_size**2
            + self.h3_units
            + self.out_units
        )

    def connection_count(self) -> int:
        """Connections including the bias connection of each unit."""
        n1 = self.h1_maps * self.h1_size**2 * (self.h1_kernel**2 + 1)
        n2 = self.h2_maps * self.h2_size**2 * (self.h2_inputs_per_map * self.h2_kernel**2 + 1)
        n3 = self.h3_units * (self.h2_maps * self.h2_size**2 + 1)
        n4 = self.out_units * (self.h3_units + 1)
        return n1 + n2 + n3 + n4

    def fan_in(self, layer: str) -> int:
        """F for the weight initialisation: inputs of one unit, the bias excluded."""
        return {
            "H1": self.h1_kernel**2,
            "H2": self.h2_inputs_per_map * self.h2_kernel**2,
            "H3": self.h2_maps * self.h2_size**2,
            "out": self.h3_units,
        }[layer]


PAPER_COUNTS = {"H1": 1068, "H2": 2592, "H3": 5790, "out": 310}
PAPER_TOTAL = 9760
PAPER_UNITS = 1256
PAPER_CONNECTIONS = 64660

_COMMON_SOURCES = {
    "input_size": "paper Sec. 3: images normalised to 16x16",
    "input_range": "paper Sec. 3: grey levels scaled to the range -1 to 1",
    "h1_maps": "paper Sec. 5.1: H1 has 12 groups of 64 units (8x8)",
    "h1_size": "paper Sec. 5.1: 8x8 feature maps",
    "h1_kernel": "paper Sec. 5.1: each unit takes a 5x5 neighbourhood",
    "h1_stride": "paper Sec. 5.1: receptive fields two pixels apart (undersampling)",
    "h1_pad": "ASSUMPTION: the paper says the input is extended with a frame; 2 pixels on "
    "each side is what gives 8x8 outputs at stride 2 with 5x5 kernels",
    "h2_maps": "paper Sec. 5.1: H2 has 12 groups of 16 units (4x4)",
    "h2_size": "paper Sec. 5.1: 4x4 feature maps",
    "h2_kernel": "paper Sec. 5.1: 5x5 receptive fields in 8 of the H1 maps",
    "h2_stride": "paper Sec. 5.1: same undersampling as H1",
    "h2_pad": "ASSUMPTION: 2 pixels on each side, the only padding that gives 4x4 at stride 2",
    "h2_inputs_per_map": "paper Sec. 5.1: each H2 map takes inputs from 8 of the 12 H1 maps",
    "h2_table": "ASSUMPTION: the paper says the scheme 'will not be described here'; the "
    "block table of karpathy/lecun1989-repro is the best-known reconstruction",
    "pad_value": "paper Sec. 5.1: the frame is filled with the background value (-1)",
    "weight_sharing": "paper Sec. 5.1: units of one feature map share their 25 weights",
    "bias_tying": "paper Sec. 5.1: units of a map do not share thresholds (biases)",
    "h3_units": "paper Sec. 5.1: H3 has 30 units fully connected to H2",
    "out_units": "paper Sec. 5.1: 10 output units fully connected to H3",
    "flatten_order": "ASSUMPTION: any fixed order is equivalent for a dense layer; C order "
    "is NumPy's and PyTorch's default",
    "target_on": "paper Sec. 5.2: targets -1 and +1 (LeCun 1998 App. A explains why)",
    "target_off": "paper Sec. 5.2: targets -1 and +1",
    "loss": "paper Sec. 5.2: mean squared error; ASSUMPTION: averaged over patterns and "
    "output units, the normalisation the paper's reported MSE figures use",
    "train_size": "paper Sec. 3: 7,291 training digits",
    "passes": "paper Sec. 5.2: 23 passes through the training set",
}


def paper(h2_table: np.ndarray | None = None) -> NetSpec:
    """The `paper` preset: f(a) = 1.7159 tanh(2a/3), targets +-1, weights U[-2.4/F, 2.4/F]."""
    sources = dict(_COMMON_SOURCES)
    sources.update(
        {
            "act_amplitude": "paper Sec. 5.1 (scaled hyperbolic tangent); LeCun 1998 App. A "
            "gives A = 1.7159",
            "act_slope": "paper (LeCun 1998 App. A): S = 2/3, so that f(1) = 1 and f(-1) = -1",
            "init_scale": "paper Sec. 5.2: weights drawn uniformly in [-2.4/F, 2.4/F]",
            "init_fanin_power": "paper Sec. 5.2: divided by F itself (LeCun 1998 App. A "
            "repeats 2.4/F)",
            "bias_init": "ASSUMPTION: the paper is silent on biases; they are drawn from the "
            "same U[-2.4/F, 2.4/F] as the unit's weights, as a bias is a weight on a constant "
            "input in the paper's counts",
            "learning_rate": "ASSUMPTION: the paper uses a diagonal Newton method and gives no "
            "rate; 0.03 for plain SGD was chosen by the sweep on held-out training digits "
            "(reports/train/sweep.md); SDLM's eta and mu live in harness/train/loop.py",
        }
    )
    kw = {"sources": sources, "name": "paper"}
    if h2_table is not None:
        kw["h2_table"] = np.asarray(h2_table, dtype=bool)
        sources["h2_table"] = "ASSUMPTION: a table supplied by the user"
    return NetSpec(**kw)


def karpathy(h2_table: np.ndarray | None = None) -> NetSpec:
    """The `karpathy` preset: plain tanh, U[-2.4/sqrt(F), 2.4/sqrt(F)], zero hidden biases,
    output biases -1, targets +-1 (as in karpathy/lecun1989-repro)."""
    base = paper(h2_table)
    why = "ASSUMPTION: as karpathy/lecun1989-repro does"
    return base.replace(
        name="karpathy",
        act_amplitude=1.0,
        act_slope=1.0,
        init_fanin_power=0.5,
        bias_init="zero_hidden_out_minus1",
        learning_rate=0.03,
        sources={
            "act_amplitude": f"{why}: plain tanh",
            "act_slope": f"{why}: plain tanh",
            "init_fanin_power": f"{why}: 2.4/sqrt(F), reading the paper's F as a variance",
            "bias_init": f"{why}: hidden biases 0, output biases -1",
            "learning_rate": f"{why}: SGD with rate 0.03, one pattern per step",
        },
    )


PRESETS = {"paper": paper, "karpathy": karpathy}


def preset(name: str) -> NetSpec:
    try:
        return PRESETS[name]()
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}") from None
