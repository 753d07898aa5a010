import os
import pickle

import numpy as np
import pytest

from pose_study.data.unpickle import load_pickle
from tests.fixtures._common import dump_py2_pickle


class _SystemCall:
    """A pickle payload that runs a shell command when loaded by an unrestricted unpickler."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


class _Eval:
    def __reduce__(self):
        return eval, ("1 + 1",)


def test_numpy_and_builtins_round_trip(tmp_path):
    data = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": [1, 2.5, "x", b"raw", None, True],
            "c": (np.int64(3), np.float64(0.5)), "d": np.array(["s", 1], dtype=object), "e": {1, 2}}
    for protocol in (2, 4, 5):
        path = tmp_path / f"p{protocol}.pkl"
        path.write_bytes(pickle.dumps(data, protocol=protocol))
        out = load_pickle(path)
        np.testing.assert_array_equal(out["a"], data["a"])
        assert out["b"] == data["b"] and out["c"] == data["c"] and out["e"] == {1, 2}
        assert list(out["d"]) == ["s", 1]


def test_python2_pickle_needs_latin1(tmp_path):
    path = tmp_path / "seq.pkl"
    dump_py2_pickle({"poses": [np.arange(72.0).reshape(1, 72)], "genders": ["m"]}, path)
    out = load_pickle(path, encoding="latin1")
    np.testing.assert_array_equal(out["poses"][0], np.arange(72.0).reshape(1, 72))
    with pytest.raises(ValueError, match="seq.pkl"):
        load_pickle(path)  # ASCII cannot decode the raw array bytes


def test_refuses_os_system_and_the_payload_does_not_run(tmp_path):
    marker = tmp_path / "payload_ran"
    payload = pickle.dumps({"joints": np.zeros(3), "x": _SystemCall(f"touch {marker}")}, protocol=2)
    evil = tmp_path / "unrealcv_train.pkl"
    evil.write_bytes(payload)
    with pytest.raises(ValueError, match=r"unrealcv_train\.pkl.*(posix|os)\.system"):
        load_pickle(evil)
    assert not marker.exists()
    pickle.loads(payload)  # control: an unrestricted load does run it, so the payload is live
    assert marker.exists()


@pytest.mark.parametrize("payload", [_Eval(), os.path.join, pickle.Unpickler, np.load],
                         ids=["eval", "os.path.join", "pickle.Unpickler", "numpy.load"])
def test_refuses_other_callables(tmp_path, payload):
    path = tmp_path / "bad.pkl"
    path.write_bytes(pickle.dumps(payload))
    with pytest.raises(ValueError, match="refusing to load global"):
        load_pickle(path)


def test_missing_and_truncated_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pkl"):
        load_pickle(tmp_path / "nope.pkl")
    path = tmp_path / "cut.pkl"
    path.write_bytes(pickle.dumps({"a": np.arange(100)})[:40])
    with pytest.raises(ValueError, match="cut.pkl"):
        load_pickle(path)
