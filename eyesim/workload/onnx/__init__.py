"""ONNX import: the layers with MACs of a CNN graph (opset 7+; older ones upgraded: ``opsets``) in DESIGN.md notation.

Public API: ``load_workload(model, batch=1, input_shapes=None) -> Workload``. Rules:

- Layers: Conv (2-D; 1-D as H = 1; 3-D refused), Gemm with a constant B, MatMul with one constant 2-D
  operand. Shapes come from ONNX shape inference after the batch is set.
- Fully connected (Gemm without transA, or MatMul of a 2-D ``rows x K`` data operand by a constant on the
  right): if the data operand comes from a 4-D ``N x C x H x W`` tensor with N = rows and C*H*W = K through
  Reshape, Flatten, Squeeze, Unsqueeze and element-wise no-MAC ops only (Dropout, Identity, Relu, Cast...),
  the filter covers that tensor: R = H, S = W, E = F = 1. Otherwise C = K and H = W = R = S = 1.
- Other MatMuls are 1x1 convolutions over the data operand's free dims (all but the contracted one, in
  order): none -> N = 1; one -> N; two -> N, E; more -> N = product of all but the last two, then E, F
  (H = E, W = F). C = contracted size, M = the constant's other dim. Two non-constant operands: refused.
- Constant tensors: initializers, parameter graph inputs, Constant / ConstantOfShape outputs, and outputs of
  no-MAC ops whose inputs are all constant (a Reshape or Transpose of a weight).
- Data vs parameter graph inputs: an input with an initializer is a parameter. Another input is a parameter
  when it is no graph output and each of its uses is a parameter position (``PARAM_INPUTS``: Conv and Gemm
  inputs 1-2, BatchNormalization 1-4, MatMul 1 if 2-D, Reshape's shape, Pad's pads, ...) or feeds a no-MAC
  op (not Shape) whose outputs are used only that way (a weight that is transposed first). All other inputs
  are data. ``batch`` sets only their batch dims and ``input_shapes`` whole shapes (the rule: ``batch``'s
  docstring); sizes are bounded (``eyesim.workload.limits``) and external data is checked (``external``).
- If the data inputs have a fixed batch b0 != ``batch``: a constant Reshape shape starting with b0 whose
  input has the batch in dim 0 (probed with a symbolic batch) gets the batch instead; a hard-coded batch in
  other ops (Expand, Tile...) is not rewritten. Computed shape inputs of no-MAC ops whose output ONNX cannot
  infer (``Reshape(x, Concat(Gather(Shape(x)), -1))``: Reshape before opset 14 ignores ``data_prop``) are
  evaluated from the inferred dims and written in as constants.
- Folding: a zero constant Pad on spatial dims whose only consumer is a Conv folds into its padding; a
  BatchNormalization of a Conv output that nothing else uses folds into that Conv. Both are listed in
  ``not_modelled`` as "folded into <conv>"; every other known op as "no MACs"; unknown ops (or any op of a
  non-default domain) are refused.
- Names: the node's name; a node with no name, or with a name an earlier node has, is ``<op_type>_<index>``
  (its position in ``graph.node``, from 0; ``_`` is appended while the name is taken).
"""

from eyesim.workload.onnx.graph import node_names
from eyesim.workload.onnx.load import load_workload
from eyesim.workload.onnx.ops import MAC_OPS, NO_MAC_OPS
