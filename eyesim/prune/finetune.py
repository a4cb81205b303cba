"""Optional global fine-tuning of a pruned ONNX model by back-propagation (step 7 of docs/prune.md,
"The algorithm: weights").

Needs torch (the ``finetune`` extra: ``torch==2.13.0``); imported only when fine-tuning is asked for. The ONNX
graph is interpreted op by op with ``torch.nn.functional`` (the common CNN ops below; others are refused), the
prunable weights and biases are trained with Adam on the cross-entropy of the first output, and pruned weights
stay zero (their gradient and value are masked).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnx
from onnx import helper, numpy_helper

from eyesim.errors import EyesimError
from eyesim.workload.onnx.run import Samples, check_samples, data_input

LEARNING_RATE = 1e-4
BATCH = 64
SEED = 0


def finetuner(epochs: int) -> Callable[[onnx.ModelProto, dict[str, np.ndarray], Samples], dict[str, np.ndarray]]:
    """A callable ``(model, weights, samples) -> weights`` that fine-tunes for ``epochs`` epochs."""
    try:
        import torch  # noqa: F401
    except ImportError as err:
        raise EyesimError("fine-tuning needs torch: pip install 'eyesim[finetune]' (torch==2.13.0)") from err

    def tune(model: onnx.ModelProto, weights: dict[str, np.ndarray], samples: Samples) -> dict[str, np.ndarray]:
        return finetune(model, weights, samples, epochs)

    return tune


def finetune(model: onnx.ModelProto, weights: dict[str, np.ndarray], samples: Samples, epochs: int
             ) -> dict[str, np.ndarray]:
    """Train ``weights`` (initializer name -> array) of ``model`` on ``samples``; zeros stay zero."""
    import torch

    torch.manual_seed(SEED)
    net = _Interpreter(model, weights)
    x = torch.from_numpy(check_samples(model, samples))
    y = torch.from_numpy(samples.y)
    opt = torch.optim.Adam(net.params.values(), lr=LEARNING_RATE)
    gen = torch.Generator().manual_seed(SEED)
    for _ in range(epochs):
        for batch in torch.randperm(len(y), generator=gen).split(BATCH):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net.logits(x[batch]), y[batch]).backward()
            for name, p in net.params.items():
                p.grad *= net.masks[name]
            opt.step()
            with torch.no_grad():
                for name, p in net.params.items():
                    p *= net.masks[name]
    return {name: p.detach().numpy().astype(weights[name].dtype) for name, p in net.params.items()}


class _Interpreter:
    """Runs an ONNX graph with torch ops; ``params`` are the trainable initializers."""

    def __init__(self, model: onnx.ModelProto, weights: dict[str, np.ndarray]) -> None:
        import torch

        self.torch = torch
        self.graph = model.graph
        self.input = data_input(model).name
        self.consts = {i.name: torch.from_numpy(numpy_helper.to_array(i).copy()) for i in model.graph.initializer
                       if i.name not in weights}
        self.params = {k: torch.nn.Parameter(torch.from_numpy(v.astype(np.float32))) for k, v in weights.items()}
        self.masks = {k: torch.from_numpy((v != 0).astype(np.float32)) if v.ndim > 1 else torch.ones(v.shape)
                      for k, v in weights.items()}
        for node in self.graph.node:
            if node.op_type not in _OPS:
                raise EyesimError(f"fine-tuning does not know op {node.op_type} (node {node.name!r})")

    def logits(self, x):
        """The input of a final Softmax, or the first graph output."""
        values = {self.input: x, **self.consts, **self.params}
        out = self.graph.output[0].name
        for node in self.graph.node:
            if node.op_type == "Softmax" and node.output[0] == out:
                return values[node.input[0]]
            args = [values[name] if name else None for name in node.input]
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            for name, value in zip(node.output, _as_tuple(_OPS[node.op_type](self.torch, args, attrs)), strict=False):
                values[name] = value
        return values[out].reshape(x.shape[0], -1)


def _as_tuple(value):
    return value if isinstance(value, tuple) else (value,)


def _conv(torch, a, at):
    pads = list(at.get("pads", [0] * (2 * (a[1].dim() - 2))))
    nd = len(pads) // 2
    x = torch.nn.functional.pad(a[0], [p for i in reversed(range(nd)) for p in (pads[i], pads[i + nd])])
    conv = torch.nn.functional.conv2d if nd == 2 else torch.nn.functional.conv1d
    return conv(x, a[1], a[2] if len(a) > 2 else None, stride=at.get("strides", 1), dilation=at.get("dilations", 1),
                groups=at.get("group", 1))


def _gemm(torch, a, at):
    x = a[0].T if at.get("transA", 0) else a[0]
    w = a[1].T if at.get("transB", 0) else a[1]
    out = at.get("alpha", 1.0) * x @ w
    return out + at.get("beta", 1.0) * a[2] if len(a) > 2 and a[2] is not None else out


def _pool(kind):
    def pool(torch, a, at):
        pads = list(at.get("pads", [0, 0, 0, 0]))
        if pads[0] != pads[2] or pads[1] != pads[3]:
            raise EyesimError("fine-tuning supports symmetric pool pads only")
        fn = torch.nn.functional.max_pool2d if kind == "max" else torch.nn.functional.avg_pool2d
        extra = {} if kind == "max" else {"count_include_pad": bool(at.get("count_include_pad", 0))}
        return fn(a[0], at["kernel_shape"], stride=at.get("strides", 1), padding=pads[:2],
                  ceil_mode=bool(at.get("ceil_mode", 0)), **extra)
    return pool


def _batchnorm(torch, a, at):
    return torch.nn.functional.batch_norm(a[0], a[3], a[4], a[1], a[2], False, 0.0, at.get("epsilon", 1e-5))


_OPS = {
    "Conv": _conv,
    "Gemm": _gemm,
    "MatMul": lambda t, a, at: a[0] @ a[1],
    "Relu": lambda t, a, at: t.relu(a[0]),
    "Sigmoid": lambda t, a, at: t.sigmoid(a[0]),
    "Tanh": lambda t, a, at: t.tanh(a[0]),
    "Clip": lambda t, a, at: t.clamp(a[0], *(float(v) if v is not None else None for v in (a + [None, None])[1:3])),
    "MaxPool": _pool("max"),
    "AveragePool": _pool("avg"),
    "GlobalAveragePool": lambda t, a, at: a[0].mean(dim=tuple(range(2, a[0].dim())), keepdim=True),
    "Flatten": lambda t, a, at: a[0].reshape(int(np.prod(a[0].shape[:at.get("axis", 1)])), -1),
    "Reshape": lambda t, a, at: a[0].reshape([a[0].shape[i] if int(d) == 0 else int(d) for i, d in enumerate(a[1])]),
    "Add": lambda t, a, at: a[0] + a[1],
    "Sub": lambda t, a, at: a[0] - a[1],
    "Mul": lambda t, a, at: a[0] * a[1],
    "Concat": lambda t, a, at: t.cat(a, dim=at["axis"]),
    "Identity": lambda t, a, at: a[0],
    "Dropout": lambda t, a, at: a[0],
    "BatchNormalization": _batchnorm,
    "Softmax": lambda t, a, at: t.softmax(a[0], dim=at.get("axis", -1)),
    "LogSoftmax": lambda t, a, at: t.log_softmax(a[0], dim=at.get("axis", -1)),
}
