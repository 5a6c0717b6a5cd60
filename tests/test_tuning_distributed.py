"""KerasTuner's distributed mode through `keras_trainplus.tuning.search`, on loopback.

One chief process holds the oracle and serves trials over gRPC; two worker
processes run them. All three run the same script, told apart only by KerasTuner's
environment variables (`KERASTUNER_TUNER_ID`, `KERASTUNER_ORACLE_IP`,
`KERASTUNER_ORACLE_PORT`), as they would on three machines. Each process is
bounded in time and killed on failure. The processes use the TensorFlow backend,
so the test runs once, in the TensorFlow run of the suite.
"""

import json
import os
import socket
import subprocess
import sys
import time

from tests.helpers.backend import only_backends

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAX_TRIALS = 4
DEADLINE_S = 300

SCRIPT = r'''
import json
import os
import sys
import time

import keras
import numpy as np

from keras_trainplus import tuning

directory, out_dir, max_trials = sys.argv[1], sys.argv[2], int(sys.argv[3])
tuner_id = os.environ["KERASTUNER_TUNER_ID"]


class RecordTrial(keras.callbacks.Callback):
    """Leaves one line per trial this process trains."""

    def on_train_end(self, logs=None):
        with open(os.path.join(out_dir, tuner_id + ".trials"), "a") as f:
            f.write("trial\n")


def build(hp):
    model = keras.Sequential([
        keras.Input((4,)),
        keras.layers.Dense(8, activation="relu"),
        keras.layers.Dropout(tuning.dropout_rate(hp)),
        keras.layers.Dense(2, activation="softmax"),
    ])
    model.compile(
        optimizer=tuning.optimizer(hp, families="adam", lookahead=False),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


rng = np.random.default_rng(0)
x = rng.normal(size=(64, 4)).astype("float32")
y = (x[:, 0] > 0).astype("int32")

if tuner_id != "chief":
    # Both workers ask for their first trial at about the same time, so that both
    # take part however long each took to import TensorFlow.
    open(os.path.join(out_dir, tuner_id + ".ready"), "w").close()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if sum(f.endswith(".ready") for f in os.listdir(out_dir)) == 2:
            break
        time.sleep(0.1)

result = tuning.search(
    build,
    (x[:48], y[:48]),
    (x[48:], y[48:]),
    strategy="random",
    max_trials=max_trials,
    objective="val_accuracy",
    epochs=1,
    batch_size=16,
    seed=7,
    callbacks=[RecordTrial()],
    directory=directory,
    project_name="distributed",
    verbose=0,
)
if tuner_id == "chief":
    payload = {"trials": result.trials, "summary": result.summary()}
    path = os.path.join(out_dir, "chief.json")
    with open(path + ".tmp", "w") as f:
        json.dump(payload, f)
    os.replace(path + ".tmp", path)
else:
    assert result is None, result
'''


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _logs(out_dir, names):
    text = []
    for name in names:
        with open(out_dir / f"{name}.log") as f:
            text.append(f"--- {name} ---\n{f.read()[-3000:]}")
    return "\n".join(text)


@only_backends("tensorflow")
def test_chief_and_two_workers_on_loopback_record_every_trial(tmp_path):
    script = tmp_path / "search_process.py"
    script.write_text(SCRIPT)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    env = dict(
        os.environ,
        PYTHONPATH=REPO,
        KERAS_BACKEND="tensorflow",
        TF_CPP_MIN_LOG_LEVEL="2",
        KERASTUNER_ORACLE_IP="127.0.0.1",
        KERASTUNER_ORACLE_PORT=str(_free_port()),
    )
    names = ["chief", "tuner0", "tuner1"]
    processes = {}
    try:
        for name in names:
            log = open(out_dir / f"{name}.log", "w")
            processes[name] = subprocess.Popen(
                [
                    sys.executable,
                    str(script),
                    str(tmp_path / "search"),
                    str(out_dir),
                    str(MAX_TRIALS),
                ],
                env=dict(env, KERASTUNER_TUNER_ID=name),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            log.close()
        deadline = time.monotonic() + DEADLINE_S
        for name in names:
            remaining = max(1.0, deadline - time.monotonic())
            try:
                code = processes[name].wait(timeout=remaining)
            except subprocess.TimeoutExpired:
                raise AssertionError(
                    f"{name} still running after {DEADLINE_S} s\n"
                    + _logs(out_dir, names)
                ) from None
            assert code == 0, f"{name} exited with {code}\n" + _logs(out_dir, names)
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
                process.wait(timeout=30)

    with open(out_dir / "chief.json") as f:
        chief = json.load(f)
    trials = chief["trials"]
    assert [t["trial_id"] for t in trials] == [str(i) for i in range(MAX_TRIALS)]
    assert {t["status"] for t in trials} == {"COMPLETED"}
    assert all(0.0 <= t["score"] <= 1.0 for t in trials)
    assert all(0.0 <= t["values"]["dropout_rate"] <= 0.5 for t in trials)
    assert (
        f"Random search: {MAX_TRIALS} trials ({MAX_TRIALS} completed)"
        in (chief["summary"])
    )
    # The chief only serves; each worker trained at least one trial; together
    # they trained each trial once.
    assert not (out_dir / "chief.trials").exists()
    counts = [len((out_dir / f"{w}.trials").read_text().split()) for w in names[1:]]
    assert min(counts) >= 1 and sum(counts) == MAX_TRIALS, counts
