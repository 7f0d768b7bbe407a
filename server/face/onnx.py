"""onnxruntime session construction: the one helper every ONNX model here uses."""

from __future__ import annotations

from pathlib import Path

import onnxruntime as ort


def make_session(path: Path, intra_op_threads: int = 1) -> ort.InferenceSession:
    """A CPU session, by default with one intra-op thread.

    ``InferenceSession.run`` is safe to call from several threads at once, so the engine
    shares one session per model between the gate's executor workers; one intra-op thread
    per call keeps two concurrent calls from fighting over the two cores.
    """
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = intra_op_threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def make_session_from_bytes(model: bytes) -> ort.InferenceSession:
    """As :func:`make_session`, for a graph rewritten in memory (never written to disk)."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    return ort.InferenceSession(model, sess_options=opts, providers=["CPUExecutionProvider"])
