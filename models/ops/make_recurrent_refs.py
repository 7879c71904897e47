"""Reference outputs of ROOT's recurrent operator test models from ONNX
Runtime (the float reference upstream uses), for quantize/tests/recurrent.rs.

Writes recurrent_refs.npz: for each model M, `M.X` (4 random inputs, seed
fixed, each of the model's full static input shape, stacked) and `M.<output>`
for each output. The files carry `clip = 0.0`, which ONNX Runtime refuses
(its clip must be positive) and ROOT and bxflow read as no clip: the attribute
is dropped for the run. ONNX Runtime has no layout 1: those models run in
layout 0 on transposed inputs, their outputs transposed back (the
definition of layout 1), initial states turned from [batch, directions,
hidden] to [directions, batch, hidden] (ROOT's RNNBidirectionalBatchwise
labels its initial_h data, which is batch-first, [2, 3, 4]). Run: python models/ops/make_recurrent_refs.py (numpy,
onnx, onnxruntime).
"""
import glob
import os

import numpy as np
import onnx
import onnx.numpy_helper
import onnxruntime as ort

here = os.path.dirname(os.path.abspath(__file__))
arrays = {}
rng = np.random.default_rng(2026)
for path in sorted(glob.glob(os.path.join(here, "*.onnx"))):
    name = os.path.basename(path)[:-5]
    if not name.startswith(("RNN", "GRU", "LSTM")):
        continue
    m = onnx.load(path)
    layout = 0
    for n in m.graph.node:
        keep = [a for a in n.attribute if not (a.name == "clip" and a.f <= 0.0)]
        layout = max([a.i for a in keep if a.name == "layout"], default=0)
        keep = [a for a in keep if a.name != "layout"]
        del n.attribute[:]
        n.attribute.extend(keep)
    for i, t in enumerate(m.graph.initializer):
        if t.name == "sequence_lens" and t.data_type != onnx.TensorProto.INT32:
            # ONNX wants int32; a float copy (LSTMPeepholes) is cast.
            v = onnx.numpy_helper.to_array(t).astype(np.int32)
            m.graph.initializer[i].CopyFrom(onnx.numpy_helper.from_array(v, t.name))
            for g in m.graph.input:
                if g.name == t.name:
                    g.type.tensor_type.elem_type = onnx.TensorProto.INT32
    if layout == 1:
        for i, t in enumerate(m.graph.initializer):
            if t.name in ("initial_h", "initial_c"):
                (declared,) = [g for g in m.graph.input if g.name == t.name] or [None]
                direction = [a.s for a in m.graph.node[0].attribute if a.name == "direction"]
                d, h = (2 if direction == [b"bidirectional"] else 1), t.dims[-1]
                v = onnx.numpy_helper.to_array(t).reshape(-1, d, h).transpose(1, 0, 2)
                m.graph.initializer[i].CopyFrom(onnx.numpy_helper.from_array(np.ascontiguousarray(v), t.name))
                if declared is not None:
                    for k, n in enumerate(v.shape):
                        declared.type.tensor_type.shape.dim[k].dim_value = n
    inp = m.graph.input[0]
    dims = [d.dim_value for d in inp.type.tensor_type.shape.dim]
    if layout == 1:
        # The session sees X as [T, B, I] and writes layout-0 outputs.
        dims = [dims[1], dims[0], dims[2]]
        inp.type.tensor_type.shape.dim[0].dim_value = dims[0]
        inp.type.tensor_type.shape.dim[1].dim_value = dims[1]
        for o in m.graph.output:
            del o.type.tensor_type.shape.dim[:]
    s = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    shape = [dims[1], dims[0], dims[2]] if layout == 1 else dims
    xs = rng.standard_normal((4, *shape)).astype(np.float32)
    outs = []
    for x in xs:
        feed = x.transpose(1, 0, 2) if layout == 1 else x
        r = s.run(None, {inp.name: feed})
        if layout == 1:
            # Y [T, D, B, H] -> [B, T, D, H]; Y_h, Y_c [D, B, H] -> [B, D, H]
            r = [o.transpose(2, 0, 1, 3) if o.ndim == 4 else o.transpose(1, 0, 2) for o in r]
        outs.append(r)
    arrays[f"{name}.X"] = xs
    for k, o in enumerate(s.get_outputs()):
        arrays[f"{name}.{o.name}"] = np.stack([r[k] for r in outs])
np.savez(os.path.join(here, "recurrent_refs.npz"), **arrays)
print(f"{len(arrays)} arrays")
