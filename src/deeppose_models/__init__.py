"""The shipped default model, as package data: the ONNX export that `deeppose predict`, `eval`, `serve` and `demo`
run when no checkpoint is named (`deeppose.paths.default_model`), its description (.json, which names the model's
version) and its model card (.md). In a source checkout this folder is also `models/`, with the PyTorch checkpoints
the export was made from (those are not in the wheel)."""
