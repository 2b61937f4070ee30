"""Issue 10's eight hand-made mutations of the generation path: each must fail a test.

    python scripts/check_mutations.py            # about 10 minutes on 2 cores; prints a table

Each mutation is one small edit a real bug could make (the embeddings in the wrong order, a scale
forced to 0, the fp16-fix VAE never loaded, ...). For each, a copy of the clone gets the edit and
the tests that should see it run there (with the copy first on the path); the table says which
tests failed. A mutation no test catches is a hole in the suite: exit status 1.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.test_readme import copy_of_clone  # noqa: E402  (what `git clone` gives: tracked and new files)

# (what, file, text to replace, replacement, tests to run)
MUTATIONS = [
    ("FaceID embeddings passed as [face, zeros]", "figurine/generate.py",
     "torch.cat([torch.zeros_like(emb), emb])", "torch.cat([emb, torch.zeros_like(emb)])",
     ["tests/test_generate.py", "-k", "reference or face_reaches"]),
    ("adapter scale forced to 0", "figurine/generate.py",
     "self.cfg.generation.ip_adapter_scale if on else 0.0", "0.0",
     ["tests/test_generate.py", "-k", "reference or keeps_every"]),
    ("FaceID LoRA scale ignored (left at 1.0)", "figurine/generate.py",
     'names, scales = (["faceid_0"], [cfg.generation.lora_scale]) if self.faceid_lora else ([], [])\n            for',
     'names, scales = (["faceid_0"], [1.0]) if self.faceid_lora else ([], [])\n            for',
     ["tests/test_generate.py", "-k", "reference"]),
    ("ControlNet scale set to 0", "figurine/generate.py",
     "controlnet_conditioning_scale=g.controlnet_scale", "controlnet_conditioning_scale=0.0",
     ["tests/test_generate.py", "-k", "reference or different_pose"]),
    ("the figure's negative prompt dropped", "figurine/generate.py",
     "prompt=prompt, negative_prompt=negative, image=control_image",
     "prompt=prompt, negative_prompt=None, image=control_image",
     ["tests/test_generate.py", "-k", "reference"]),
    ("the fp16-fix VAE never loaded", "figurine/generate.py",
     "            if vae_dir is not None:", "            if False:",
     ["tests/test_generate.py", "-k", "reference"]),
    ("RGB given to insightface where it expects BGR", "figurine/face.py",
     'np.asarray(image.convert("RGB"))[:, :, ::-1]', 'np.asarray(image.convert("RGB"))',
     ["tests/test_generate.py", "-k", "insightface"]),
    ("the photo's hash computed without its salt", "figurine/pipeline.py",
     "hmac.new(salt.encode(), data, hashlib.sha256)", "hashlib.sha256(data)",
     ["tests/test_make.py", "-k", "same_seed"]),
]


def main() -> int:
    holes = 0
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "figurine"
        copy_of_clone(copy)
        env = {**os.environ, "PYTHONPATH": str(copy)}
        print("| mutation | tests that fail |\n|---|---|")
        for what, file, old, new, tests in MUTATIONS:
            path = copy / file
            original = path.read_text()
            if original.count(old) != 1:
                print(f"| {what} | (not applied: the code changed; update this script) |")
                holes += 1
                continue
            path.write_text(original.replace(old, new))
            try:
                proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "0",
                                       *tests], cwd=copy, env=env, capture_output=True, text=True, timeout=1800)
            finally:
                path.write_text(original)
            failed = sorted(set(re.findall(r"^FAILED (\S+)", proc.stdout, re.M)))
            holes += not failed
            print(f"| {what} | {', '.join(f.split('::', 1)[1] for f in failed) or 'NONE: a hole in the suite'} |")
    return 1 if holes else 0


if __name__ == "__main__":
    raise SystemExit(main())
