"""A random OpenPose body annotator with the real architecture, for the tiny weights tree.

    from figurine.tiny.annotators import write_annotators
    write_annotators("weights-tiny/annotators")   # -> annotators/body_pose_model.safetensors

    python -m figurine.tiny.annotators DIR          # the same from the shell

The file has the layout `figurine weights fetch` produces from lllyasviel/Annotators'
body_pose_model.pth: the checkpoint's own tensor names ("conv1_1.weight", ...), converted to
safetensors. The weights are random (seeded), so figurine's real loading and estimator code
runs on it and finds no person in any photo. The network cannot be made smaller without
changing its architecture: 52.3 M parameters, about 105 MB in float16 (209 MB in float32).
"""

from __future__ import annotations

import sys
from pathlib import Path

FILENAME = "body_pose_model.safetensors"


def write_annotators(directory: str | Path, seed: int = 0, dtype: str = "float16") -> Path:
    """Write <directory>/body_pose_model.safetensors and return its path."""
    import torch
    from controlnet_aux.open_pose.model import bodypose_model
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    net = bodypose_model()
    # The network names its tensors "model0.conv1_1.weight"; the published checkpoint drops the
    # first part ("conv1_1.weight"), and so does this file.
    tensors = {
        key.split(".", 1)[1]: value.to(getattr(torch, dtype)).contiguous()
        for key, value in net.state_dict().items()
    }
    path = directory / FILENAME
    save_file(tensors, str(path), metadata={"format": "pt", "note": "random tiny-weights stand-in"})
    return path


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    print(write_annotators(argv[0] if argv else "annotators"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
