"""A tiny stand-in for BiRefNet's ONNX export (figurine/tiny/birefnet.py).

    python scripts/tiny_birefnet.py FILE [--float16] [--cue colour]
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from figurine.tiny.birefnet import CUES, main, model, write_model  # noqa: E402, F401

if __name__ == "__main__":
    raise SystemExit(main())
