"""A tiny random Depth Anything V2 (the builder is figurine/tiny/depth.py).

    python scripts/tiny_depth.py /tmp/tiny-weights/depth-anything-v2-small
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from figurine.tiny.depth import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main())
