"""A random OpenPose body annotator with the real architecture (figurine/tiny/annotators.py).

    python scripts/tiny_annotators.py DIR         # DIR/body_pose_model.safetensors
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from figurine.tiny.annotators import FILENAME, main, write_annotators  # noqa: E402, F401

if __name__ == "__main__":
    raise SystemExit(main())
