"""Run the compiled tier and the optimizer step benchmark on an accelerator.

One command on a machine with a GPU or TPU (a few minutes):

    python benchmarks/accelerator_check.py

For each backend (TensorFlow and JAX, each in its own processes) it runs the compiled
tier of the test suite (`tests/test_integration.py`: every optimizer, callback,
model-building style and augmentation layer on ordinary-size convnets) twice, with
`jit_compile="auto"` (Keras's default: XLA on TensorFlow GPUs and TPUs, always on JAX)
and with the `mixed_float16` policy under `jit_compile=True`, then the optimizer step
benchmark of `benchmarks/optimizers.py` (ours vs Keras's own optimizer, ratio of step
times). It writes the results, naming the device, into the accelerator section of
BENCHMARKS.md (atomically).

Without an accelerator it stops, unless `--allow-cpu` is given; `--quick` runs one case
per test of the tier and one small parameter set, to check that the script works
(e.g. `--allow-cpu --quick --output /tmp/check.md` on a CPU machine).
"""

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ElementTree

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _markdown import replace_section  # noqa: E402

TIER = "tests/test_integration.py"
CONFIGS = {
    'jit_compile="auto", float32': [
        "--integration-jit-compile=auto",
        "--integration-dtype-policy=float32",
    ],
    "jit_compile=True, mixed_float16": [
        "--integration-jit-compile=true",
        "--integration-dtype-policy=mixed_float16",
    ],
}
# One case per test of the tier (`--quick`).
QUICK = (
    "test_optimizer_with_callback and Ranger and FreezeUnfreeze"
    " or test_build_style_with_optimizer and KerasHub and Nesterov"
    " or test_augmentation_layer_in_compiled_model and RandomAffine"
    " or test_mixup_in_compiled_train_step and CutMix and class_indices"
    " or test_known_failures and subclassed"
)
DEVICE_PROBE = """
import json, keras
backend = keras.backend.backend()
if backend == "jax":
    import jax
    device = jax.devices()[0]
    found = {"platform": device.platform, "name": device.device_kind}
else:
    import tensorflow as tf
    gpus = tf.config.list_physical_devices("GPU")
    tpus = tf.config.list_logical_devices("TPU")
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        found = {"platform": "gpu", "name": details.get("device_name", "GPU")}
    elif tpus:
        found = {"platform": "tpu", "name": "TPU"}
    else:
        found = {"platform": "cpu", "name": "CPU"}
found["versions"] = {"keras": keras.__version__}
if backend == "jax":
    found["versions"]["jax"] = jax.__version__
else:
    found["versions"]["tensorflow"] = tf.__version__
print(json.dumps(found))
"""


def _environment(backend):
    return dict(
        os.environ,
        KERAS_BACKEND=backend,
        PYTHONPATH=ROOT,
        TF_CPP_MIN_LOG_LEVEL="3",
        # Several test processes share the accelerator: allocate on demand.
        TF_FORCE_GPU_ALLOW_GROWTH="true",
        XLA_PYTHON_CLIENT_PREALLOCATE="false",
    )


def probe_device(backend):
    """The device Keras computes on under `backend`: platform, name, versions."""
    out = subprocess.run(
        [sys.executable, "-c", DEVICE_PROBE],
        env=_environment(backend),
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def summarize_junit(path):
    """Counts per test function of a pytest JUnit XML report, and the failures.

    Returns `{test function: {"passed": n, "failed": n, "xfailed": n, "skipped": n,
    "seconds": s, "failures": [case ids]}}`.
    """
    summary = {}
    for case in ElementTree.parse(path).getroot().iter("testcase"):
        name = case.get("name", "")
        function = name.split("[", 1)[0]
        entry = summary.setdefault(
            function,
            {"passed": 0, "failed": 0, "xfailed": 0, "skipped": 0, "seconds": 0.0},
        )
        entry.setdefault("failures", [])
        entry["seconds"] += float(case.get("time", 0.0))
        skipped = case.find("skipped")
        if case.find("failure") is not None or case.find("error") is not None:
            entry["failed"] += 1
            entry["failures"].append(name)
        elif skipped is not None:
            xfail = skipped.get("type") == "pytest.xfail"
            entry["xfailed" if xfail else "skipped"] += 1
        else:
            entry["passed"] += 1
    return summary


def run_tier(backend, options, quick, workers):
    """Runs the compiled tier with `options`; returns its summary and wall time."""
    with tempfile.TemporaryDirectory() as folder:
        report = os.path.join(folder, "tier.xml")
        command = [sys.executable, "-m", "pytest", TIER, "-q", "-p", "no:cacheprovider"]
        command += ["-n", str(workers), f"--junitxml={report}"] + options
        if quick:
            command += ["-k", QUICK]
        start = datetime.datetime.now()
        done = subprocess.run(command, cwd=ROOT, env=_environment(backend))
        wall = (datetime.datetime.now() - start).total_seconds()
        if not os.path.exists(report):
            raise RuntimeError(f"pytest wrote no report (exit code {done.returncode})")
        return summarize_junit(report), wall


def run_optimizer_benchmark(backend, quick):
    """The rows of `benchmarks/optimizers.py` for `backend` (ours vs peers)."""
    command = [sys.executable, os.path.join(ROOT, "benchmarks", "optimizers.py")]
    command += ["--child", backend, "--reps", "1" if quick else "3"]
    if quick:
        command += ["--sizes", "1M"]
    out = subprocess.run(
        command,
        env=_environment(backend),
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def render(results, quick):
    """The accelerator section's markdown."""
    lines = [
        "## Accelerator check",
        "",
        "Written by `benchmarks/accelerator_check.py`"
        + (
            " with `--quick` (one case per test, a small parameter set)"
            if quick
            else ""
        )
        + f", {datetime.date.today().isoformat()}. The compiled tier "
        "(`tests/test_integration.py`) under two configurations, then the optimizer "
        "step benchmark (`benchmarks/optimizers.py`: ours / theirs step time, median "
        "[25 %, 75 %]).",
        "",
    ]
    for backend, result in results.items():
        device = result["device"]
        versions = ", ".join(f"{k} {v}" for k, v in device["versions"].items())
        lines += [
            f"### {backend}: {device['name']} ({device['platform']}; {versions})",
            "",
            "| configuration | test | passed | failed | expected failures | seconds |",
            "|---|---|---|---|---|---|",
        ]
        failures = []
        for config, (summary, wall) in result["tier"].items():
            for function, entry in sorted(summary.items()):
                lines.append(
                    f"| {config} | `{function}` | {entry['passed']} | "
                    f"{entry['failed']} | {entry['xfailed']} | {entry['seconds']:.0f} |"
                )
                failures += [f"{config}: `{case}`" for case in entry["failures"]]
            lines.append(f"| {config} | (wall time) | | | | {wall:.0f} |")
        lines += [""]
        if failures:
            lines += ["Failures:", ""] + [f"- {f}" for f in failures] + [""]
        lines += [
            "| parameters | ours | vs | ours ms | theirs ms | ratio [p25, p75] |",
            "|---|---|---|---|---|---|",
        ]
        for r in result["optimizers"]:
            lines.append(
                f"| {r['size']} | {r['ours']} | {r['theirs']} | {r['ours_ms']:.2f} | "
                f"{r['theirs_ms']:.2f} | {r['ratio']:.2f} "
                f"[{r['ratio_p25']:.2f}, {r['ratio_p75']:.2f}] |"
            )
        lines += [""]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="tensorflow,jax")
    parser.add_argument(
        "--allow-cpu", action="store_true", help="run without an accelerator"
    )
    parser.add_argument(
        "--quick", action="store_true", help="one case per test, small benchmark"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=max(1, min(8, (os.cpu_count() or 2) // 2)),
        help="pytest-xdist processes sharing the device",
    )
    parser.add_argument(
        "--output",
        default=os.path.join(ROOT, "BENCHMARKS.md"),
        help="the markdown file whose accelerator section is rewritten",
    )
    args = parser.parse_args(argv)
    results = {}
    for backend in args.backends.split(","):
        device = probe_device(backend)
        if device["platform"] == "cpu" and not args.allow_cpu:
            parser.exit(
                2,
                f"{backend}: no GPU or TPU found (Keras computes on the CPU). Run on "
                "a machine with an accelerator, or pass --allow-cpu to check the "
                "script itself.\n",
            )
        print(f"{backend}: {device['name']} ({device['platform']})", flush=True)
        tier = {
            config: run_tier(backend, options, args.quick, args.workers)
            for config, options in CONFIGS.items()
        }
        optimizers = run_optimizer_benchmark(backend, args.quick)
        results[backend] = {"device": device, "tier": tier, "optimizers": optimizers}
    markdown = render(results, args.quick)
    print(markdown)
    replace_section(args.output, "accelerator", markdown)
    print(f"Wrote the accelerator section of {args.output}")


if __name__ == "__main__":
    main()
