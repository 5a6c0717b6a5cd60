"""Time one compiled update step of each optimizer against its Keras/optax/torch peer.

Run from the repository root: `python benchmarks/optimizers.py` (all backends, a few
minutes on 2 CPU cores) or `--backends jax` for one. Each backend runs in its own
process (Keras fixes the backend at import); the parent gathers the results and
rewrites the optimizers section of BENCHMARKS.md (atomically).

Method: for two parameter sets (ten 1000x1000 matrices, 10M parameters; the
trainable shapes of a ResNet-50, 25.6M), each optimizer and its peer are built on
the same float32 parameters with fixed random gradients and compiled (TensorFlow:
`tf.function(jit_compile=True)`; JAX: `jax.jit` of `stateless_apply` with the
state donated; PyTorch: eager, as Keras runs it). Timed repetitions of the two
alternate (so machine load hits both alike); a repetition is 10 steps (12 for
Ranger: two sync periods, so LookAhead/Ranger pay their syncs). The ratio is
ours / theirs per repetition; the table gives its median and the 25-75 % range.
The memory bandwidth is the median rate of a 256 MB NumPy copy (read + write).
"""

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _markdown import BENCHMARKS  # noqa: E402
from _markdown import ROOT  # noqa: E402
from _markdown import load_average  # noqa: E402
from _markdown import machine  # noqa: E402
from _markdown import replace_section  # noqa: E402
from _markdown import versions  # noqa: E402

# Steps per timed repetition: two sync periods for LookAhead (5) and Ranger (6).
STEPS_PER_REP = {"LookAhead(Adam)": 10, "Ranger": 12}
DEFAULT_STEPS_PER_REP = 10

# Float32 bytes read + written per parameter and step, amortized over the syncs.
BYTES_PER_PARAM = {
    "SGD(nesterov)": 20,  # read g, v, x; write v, x
    "Adam": 28,  # read g, m, v, x; write m, v, x
    "LookAhead(Adam)": 28 + 16 / 5,  # + every 5th step read x, phi; write x, phi
    "Ranger": 28 + 4 + 16 / 6,  # + a second read of g for its mean (centralization)
}
BYTES_PER_PARAM.update(
    {
        "Nesterov": BYTES_PER_PARAM["SGD(nesterov)"],
        "RAdam": BYTES_PER_PARAM["Adam"],
        # The inner optimizer's traffic: the multiplier is one scalar per variable;
        # a scaled step (Nadam) needs no more if XLA fuses it into the update.
        "LearningRateMultipliers(Adam)": BYTES_PER_PARAM["Adam"],
        "LearningRateMultipliers(Nadam)": BYTES_PER_PARAM["Adam"],
    }
)


def resnet50_shapes():
    """Trainable shapes of a ResNet-50: conv kernels, batch-norm parameters, head."""
    shapes = [(7, 7, 3, 64), (64,), (64,)]
    channels = 64
    for mid, blocks in ((64, 3), (128, 4), (256, 6), (512, 3)):
        for block in range(blocks):
            out = 4 * mid
            shapes += [(1, 1, channels, mid), (mid,), (mid,)]
            shapes += [(3, 3, mid, mid), (mid,), (mid,)]
            shapes += [(1, 1, mid, out), (out,), (out,)]
            if block == 0:
                shapes += [(1, 1, channels, out), (out,), (out,)]
            channels = out
    return shapes + [(2048, 1000), (1000,)]


SIZES = {
    "10M (10 x 1000x1000)": [(1000, 1000)] * 10,
    "ResNet-50 (25.6M)": resnet50_shapes(),
}
# Selectable with `--sizes 1M` (a quick check of the script, not in the default run).
EXTRA_SIZES = {"1M (1 x 1000x1000)": [(1000, 1000)]}


def _sizes(prefixes):
    """The parameter sets whose names start with one of the comma-separated prefixes."""
    chosen = {
        name: shapes
        for name, shapes in {**SIZES, **EXTRA_SIZES}.items()
        if any(name.startswith(p) for p in prefixes.split(","))
    }
    if not chosen:
        raise SystemExit(f"--sizes {prefixes!r} selects none of {list(SIZES)}")
    return chosen


def _arrays(shapes, seed):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s, dtype=np.float32) * 0.01 for s in shapes]


def memory_bandwidth():
    src = np.ones(64 * 2**20, np.float32)
    dst = np.empty_like(src)
    times = []
    for _ in range(7):
        start = time.perf_counter()
        np.copyto(dst, src)
        times.append(time.perf_counter() - start)
    return 2 * src.nbytes / float(np.median(times))


def keras_candidates(backend):
    import keras

    import keras_trainplus as ktp

    ours = {
        "Nesterov": lambda: ktp.optimizers.Nesterov(1e-3, momentum=0.9),
        "RAdam": lambda: ktp.optimizers.RAdam(1e-3),
        "LookAhead(Adam)": lambda: ktp.optimizers.LookAhead(
            keras.optimizers.Adam(1e-3), 5, 0.5
        ),
        "Ranger": lambda: ktp.optimizers.Ranger(1e-3),
        "LearningRateMultipliers(Adam)": lambda: ktp.optimizers.LearningRateMultipliers(
            keras.optimizers.Adam(1e-3), {}, default=0.5
        ),
        "LearningRateMultipliers(Nadam)": lambda: (
            ktp.optimizers.LearningRateMultipliers(
                keras.optimizers.Nadam(1e-3), {}, default=0.5
            )
        ),
    }
    theirs = {
        "SGD(nesterov)": lambda: keras.optimizers.SGD(
            1e-3, momentum=0.9, nesterov=True
        ),
        "Adam": lambda: keras.optimizers.Adam(1e-3),
        "Nadam": lambda: keras.optimizers.Nadam(1e-3),
    }
    return {**ours, **theirs}


def keras_step(make, shapes, backend):
    """Returns `run(n)`: n steps of a fresh Keras optimizer, blocking at the end."""
    import keras

    variables = [keras.Variable(a) for a in _arrays(shapes, 0)]
    grads_np = _arrays(shapes, 1)
    optimizer = make()
    optimizer.build(variables)
    if backend == "tensorflow":
        import tensorflow as tf

        grads = [tf.constant(g) for g in grads_np]

        @tf.function(jit_compile=True)
        def step():
            optimizer.apply(grads, variables)

        def run(n):
            for _ in range(n):
                step()
            variables[0].numpy()

        return run
    if backend == "jax":
        import jax

        grads = [jax.numpy.asarray(g) for g in grads_np]

        def step_fn(params, state):
            return optimizer.stateless_apply(state, grads, params)

        step_fn = jax.jit(step_fn, donate_argnums=(0, 1))
        carry = [[v.value for v in variables], [v.value for v in optimizer.variables]]

        def run(n):
            for _ in range(n):
                carry[:] = step_fn(*carry)
            jax.block_until_ready(carry)

        return run
    grads = [keras.ops.convert_to_tensor(g) for g in grads_np]

    def run(n):
        for _ in range(n):
            optimizer.apply(grads, variables)

    return run


def optax_step(name, shapes):
    import jax
    import optax

    params = [jax.numpy.asarray(a) for a in _arrays(shapes, 0)]
    grads = [jax.numpy.asarray(g) for g in _arrays(shapes, 1)]
    if name == "optax.lookahead(adam)":
        tx = optax.lookahead(optax.adam(1e-3), 5, 0.5)
        # Separate buffers for slow and fast (`init_synced` shares them, which
        # donation rejects).
        params = optax.LookaheadParams(
            fast=params, slow=[jax.numpy.copy(p) for p in params]
        )
    else:
        tx = {
            "optax.radam": lambda: optax.radam(1e-3),
            "optax.adam": lambda: optax.adam(1e-3),
            "optax.sgd(nesterov)": lambda: optax.sgd(1e-3, momentum=0.9, nesterov=True),
        }[name]()
    state = tx.init(params)

    def step_fn(params, state):
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    step_fn = jax.jit(step_fn, donate_argnums=(0, 1))
    carry = [params, state]

    def run(n):
        for _ in range(n):
            carry[:] = step_fn(*carry)
        jax.block_until_ready(carry)

    return run


def torch_step(name, shapes):
    import torch

    params = [torch.tensor(a, requires_grad=True) for a in _arrays(shapes, 0)]
    for p, g in zip(params, _arrays(shapes, 1)):
        p.grad = torch.tensor(g)
    if name == "torch.optim.RAdam":
        optimizer = torch.optim.RAdam(params, lr=1e-3)
    else:
        optimizer = torch.optim.SGD(params, lr=1e-3, momentum=0.9, nesterov=True)

    def run(n):
        with torch.no_grad():
            for _ in range(n):
                optimizer.step()

    return run


def _time(run, steps):
    start = time.perf_counter()
    run(steps)
    return (time.perf_counter() - start) / steps


def compare(make_ours, make_theirs, reps, steps):
    ours, theirs = make_ours(), make_theirs()
    ours(2)
    theirs(2)  # compile and warm up
    t_ours, t_theirs = [], []
    for _ in range(reps):
        t_ours.append(_time(ours, steps))
        t_theirs.append(_time(theirs, steps))
    ratios = np.array(t_ours) / np.array(t_theirs)
    return {
        "ours_ms": 1e3 * float(np.median(t_ours)),
        "theirs_ms": 1e3 * float(np.median(t_theirs)),
        "ratio": float(np.median(ratios)),
        "ratio_p25": float(np.percentile(ratios, 25)),
        "ratio_p75": float(np.percentile(ratios, 75)),
    }


def run_backend(backend, reps, sizes=None, only=None):
    """Measures the pairs on `backend` (the process's KERAS_BACKEND), all or `only`."""
    import keras

    assert keras.backend.backend() == backend
    candidates = keras_candidates(backend)
    pairs = [
        ("Nesterov", "SGD(nesterov)"),
        ("RAdam", "Adam"),
        ("LookAhead(Adam)", "Adam"),
        ("Ranger", "Adam"),
        ("LearningRateMultipliers(Adam)", "Adam"),
        ("LearningRateMultipliers(Nadam)", "Nadam"),
    ]
    if backend == "jax" and importlib.util.find_spec("optax") is not None:
        pairs += [
            ("Nesterov", "optax.sgd(nesterov)"),
            ("RAdam", "optax.radam"),
            ("LookAhead(Adam)", "optax.lookahead(adam)"),
            ("Adam", "optax.adam"),
        ]
    if backend == "torch":
        pairs += [
            ("Nesterov", "torch.optim.SGD(nesterov)"),
            ("RAdam", "torch.optim.RAdam"),
        ]
    if only:
        pairs = [pair for pair in pairs if pair[0] in only]
    rows = []
    for size, shapes in (sizes or SIZES).items():
        n_params = int(sum(np.prod(s) for s in shapes))
        for ours, theirs in pairs:

            def make(name, shapes):
                if name.startswith("optax."):
                    return lambda: optax_step(name, shapes)
                if name.startswith("torch."):
                    return lambda: torch_step(name, shapes)
                return lambda: keras_step(candidates[name], shapes, backend)

            steps = STEPS_PER_REP.get(ours, DEFAULT_STEPS_PER_REP)
            result = compare(make(ours, shapes), make(theirs, shapes), reps, steps)
            result.update(
                backend=backend, size=size, n_params=n_params, ours=ours, theirs=theirs
            )
            print(json.dumps(result), file=sys.stderr, flush=True)
            rows.append(result)
    return rows


def render(rows, bandwidth, load):
    lines = [
        "## Optimizers",
        "",
        "Written by `benchmarks/optimizers.py`. One update step (compiled: TensorFlow "
        "`jit_compile=True`, JAX `jax.jit` with donated state; PyTorch eager, as Keras "
        "runs it) over float32 parameters with fixed gradients; each pair timed in "
        "alternating repetitions of 10 steps (12 for Ranger: LookAhead and Ranger pay "
        "their syncs). Ratio = ours / theirs per repetition: median [25 %, 75 %].",
        "",
        f"Machine: {machine()}; {versions('keras', 'tensorflow', 'jax', 'torch')}. "
        f"**Shared and loaded** (other jobs run alongside; load average {load} at "
        "the start, 1, 5, 15 min), so absolute times are noisy; ratios are measured "
        "in the same run, interleaved.",
        f"Measured memory bandwidth (256 MB NumPy copy, read + write): "
        f"{bandwidth / 1e9:.1f} GB/s.",
        "",
        "| backend | parameters | ours | vs | ours ms | theirs ms | ratio [p25, p75] "
        "| bytes/param | ours GB/s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        nbytes = BYTES_PER_PARAM[r["ours"]] * r["n_params"]
        achieved = nbytes / (r["ours_ms"] / 1e3) / 1e9
        lines.append(
            f"| {r['backend']} | {r['size']} | {r['ours']} | {r['theirs']} | "
            f"{r['ours_ms']:.1f} | {r['theirs_ms']:.1f} | {r['ratio']:.2f} "
            f"[{r['ratio_p25']:.2f}, {r['ratio_p75']:.2f}] | "
            f"{BYTES_PER_PARAM[r['ours']]:.1f} | {achieved:.1f} |"
        )
    lines += [
        "",
        "Bytes/param counts the float32 reads and writes one step needs (Adam: read "
        "g, m, v, x, write m, v, x = 28 B; SGD with momentum 20 B; LookAhead adds "
        "16 B every `sync_period` steps; Ranger's centralization reads g once more; "
        "LearningRateMultipliers adds a scalar per variable to its inner optimizer's "
        "step, or, around an optimizer it cannot step itself (Nadam), scales that "
        "optimizer's step, x + m (x_inner - x)). "
        "An update step is an element-wise pass over these arrays, so its floor is "
        "bytes/param x parameters / bandwidth: 'ours GB/s' near the measured "
        "bandwidth means the step is memory-bound and a ratio above 1 can only come "
        "from extra traffic, not arithmetic. On PyTorch, Keras's built-in optimizers "
        "update all variables with fused in-place `torch._foreach_*` kernels, while "
        "ours run per variable through `keras.ops`, which allocates a temporary per "
        "operation: expect them slower there (PyTorch is smoke-tested, not tuned).",
        "",
    ]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="tensorflow,jax,torch")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument(
        "--sizes",
        default=",".join(SIZES),
        help="comma-separated prefixes of the parameter sets (default: all)",
    )
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated names of ours to measure, e.g. 'LookAhead(Adam),Ranger'",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument(
        "--no-write", action="store_true", help="print, do not edit BENCHMARKS.md"
    )
    args = parser.parse_args()
    if args.child:
        only = [name for name in args.only.split(",") if name]
        rows = run_backend(args.child, args.reps, _sizes(args.sizes), only)
        print(json.dumps(rows))
        return
    load = load_average()
    rows = []
    for backend in args.backends.split(","):
        env = dict(
            os.environ, KERAS_BACKEND=backend, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3"
        )
        out = subprocess.run(
            [sys.executable, __file__, "--child", backend, "--reps", str(args.reps)]
            + ["--sizes", args.sizes, "--only", args.only],
            env=env,
            check=True,
            stdout=subprocess.PIPE,
            text=True,
        )
        rows += json.loads(out.stdout.strip().splitlines()[-1])
    markdown = render(rows, memory_bandwidth(), load)
    print(markdown)
    if not args.no_write:
        replace_section(BENCHMARKS, "optimizers", markdown)


if __name__ == "__main__":
    main()
