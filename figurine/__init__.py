"""figurine: turn a selfie into a boxed action figure, entirely on your own GPU.

    figurine make selfie.jpg --name "Ada Lovelace" --tagline "Analytical Engine Pilot" -o ada.png

    from figurine import FigurinePipeline, Request          # the Python API (see pipeline.py)
    pipe = FigurinePipeline.from_config(["configs/tiny.toml"], weights="/tmp/tiny-weights")
    result = pipe(Request(name="Ada", photos=["me.jpg"], output="ada.png"))

Stages, one module each: photo -> face -> pose -> prompt -> generate -> matte -> packaging
-> provenance, run in order by pipeline.py. This package's top level imports nothing heavy, so
`figurine --help` stays fast: the API names load on first use.
"""

__version__ = "0.1.0"

_API = {"FigurinePipeline": "figurine.pipeline", "Result": "figurine.pipeline", "Request": "figurine.request",
        "load_config": "figurine.config", "FigurineError": "figurine.errors"}
__all__ = list(_API)


def __getattr__(name: str):
    if name in _API:
        import importlib

        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'figurine' has no attribute {name!r}")
