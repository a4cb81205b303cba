"""Workload: what is computed. Layer and Workload specs (``layer``); ONNX import and running (``onnx``)."""

from eyesim.workload.layer import Layer, LayerIO, NotModelled, Workload, out_size
