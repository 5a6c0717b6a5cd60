"""benchmarks/accelerator_check.py: its report parsing, its section and its refusal
to run on CPU without `--allow-cpu` (the accelerator runs themselves are not tests)."""

import importlib.util
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _load():
    path = os.path.join(ROOT, "benchmarks", "accelerator_check.py")
    spec = importlib.util.spec_from_file_location("accelerator_check", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest">
<testcase classname="tests.test_integration" name="test_a[x-1]" time="2.5"/>
<testcase classname="tests.test_integration" name="test_a[x-2]" time="1.5">
  <failure message="boom">trace</failure></testcase>
<testcase classname="tests.test_integration" name="test_b[y]" time="3.0">
  <skipped type="pytest.xfail" message="known"/></testcase>
<testcase classname="tests.test_integration" name="test_b[z]" time="0.0">
  <skipped type="pytest.skip" message="backend"/></testcase>
</testsuite></testsuites>
"""


def test_summary_counts_outcomes_per_test_function(tmp_path):
    report = tmp_path / "report.xml"
    report.write_text(JUNIT)
    summary = _load().summarize_junit(str(report))
    assert summary["test_a"] == {
        "passed": 1,
        "failed": 1,
        "xfailed": 0,
        "skipped": 0,
        "seconds": 4.0,
        "failures": ["test_a[x-2]"],
    }
    assert (summary["test_b"]["xfailed"], summary["test_b"]["skipped"]) == (1, 1)


def test_section_names_the_device_and_replaces_only_its_own(tmp_path):
    module = _load()
    results = {
        "jax": {
            "device": {"platform": "gpu", "name": "H100", "versions": {"jax": "0.1"}},
            "tier": {
                "c": (
                    {
                        "test_a": {
                            "passed": 3,
                            "failed": 1,
                            "xfailed": 0,
                            "skipped": 0,
                            "seconds": 9.0,
                            "failures": ["test_a[x]"],
                        }
                    },
                    12.0,
                )
            },
            "optimizers": [
                {
                    "size": "1M",
                    "ours": "RAdam",
                    "theirs": "Adam",
                    "ours_ms": 1.0,
                    "theirs_ms": 1.0,
                    "ratio": 1.0,
                    "ratio_p25": 0.9,
                    "ratio_p75": 1.1,
                }
            ],
        }
    }
    markdown = module.render(results, quick=False)
    assert "### jax: H100 (gpu; jax 0.1)" in markdown
    assert "| c | `test_a` | 3 | 1 | 0 | 9 |" in markdown
    assert "- c: `test_a[x]`" in markdown
    path = tmp_path / "B.md"
    path.write_text(
        "# B\n\n<!-- section: other -->\nkept\n<!-- end section: other -->\n"
    )
    module.replace_section(str(path), "accelerator", markdown)
    module.replace_section(str(path), "accelerator", "again\n")
    text = path.read_text()
    assert "kept" in text and text.count("<!-- section: accelerator -->") == 1
    assert text.endswith(
        "<!-- section: accelerator -->\nagain\n<!-- end section: accelerator -->\n"
    )


def test_refuses_a_cpu_without_allow_cpu(monkeypatch, capsys):
    module = _load()
    monkeypatch.setattr(
        module,
        "probe_device",
        lambda backend: {"platform": "cpu", "name": "CPU", "versions": {}},
    )
    with pytest.raises(SystemExit) as stop:
        module.main(["--backends", "jax", "--output", os.devnull])
    assert stop.value.code == 2
    assert "no GPU or TPU found" in capsys.readouterr().err
