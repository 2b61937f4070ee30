"""A synthetic insightface buffalo_l pack for tests (figurine/tiny/insightface.py).

    python scripts/tiny_insightface.py DIR        # det_10g.onnx + w600k_r50.onnx
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from figurine.tiny.insightface import (  # noqa: E402, F401
    DET_FILE, REC_FILE, detector_model, main, recognition_model, write_pack,
)

if __name__ == "__main__":
    raise SystemExit(main())
