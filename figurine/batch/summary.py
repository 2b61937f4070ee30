"""A batch's results: the progress bar while it runs, OUTDIR/batch.csv and batch.json at the end.

    from figurine.batch.summary import Summary
    summary = Summary(total_rows=6)
    summary.add(line=3, row_id="row-0002", name="Ada", status="made", result={...})
    summary.write(outdir, workers=runner.worker_stats(), seconds=812.0)
    print(summary.totals_line())   # "5 made, 0 done earlier, 0 failed, 1 bad in 812 s: 22.2 images per hour"

Per row (batch.csv, and batch.json's "rows"): line, id, name, status (made | done earlier |
failed | bad | interrupted), error (one line), attempts and retries in this run, seconds, identity
score, energy (GPU joules, Wh, g CO2e where measured, else the reason), which worker made it (worker
number, Ray node, GPU index and model) and which stages were reused. batch.json adds the totals:
rows per status, wall time, images per hour (made rows / wall time), the summed row energy, and per
worker its rows, its GPU's busy share (NVML utilisation sampled while rows ran, or why it is
unavailable), the share of its time spent in the GPU's part of a row, and its energy over all its
rows in one window.

Reading energy when rows overlap: a worker prepares row k+1 on the GPU while row k is packed on
the CPU, so a row's own metered stages (matte, packaging) can include GPU energy that row k+1
drew. A row's energy is therefore an upper bound that counts some joules twice; the figure per
image is the worker's one window divided by its rows (batch.json: workers[].energy, totals.energy
_per_image_j), which counts each joule once.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

CSV_FIELDS = ("line", "id", "name", "status", "error", "attempts", "retries", "seconds", "identity_score",
              "gpu_joules", "wh", "co2e_g", "energy_note", "worker", "node", "gpu", "reused")
STATUSES = ("made", "done earlier", "failed", "bad", "interrupted")


class Summary:
    def __init__(self):
        self.rows: list[dict] = []

    def add(self, line: int, row_id: str | None, name: str | None, status: str, result: dict | None = None,
            error: str = "") -> dict:
        r = result or {}
        energy = r.get("energy") or {}
        attempts = r.get("attempts")
        entry = {
            "line": line, "id": row_id or "", "name": name or "", "status": status,
            "error": error or r.get("error") or "",
            "attempts": attempts, "retries": max(0, attempts - 1) if isinstance(attempts, int) and attempts else None,
            "seconds": r.get("seconds"), "identity_score": r.get("identity_score"),
            "gpu_joules": energy.get("gpu_joules_gross"), "wh": energy.get("wh"), "co2e_g": energy.get("co2e_g"),
            "energy_note": energy.get("reason") or "",
            "worker": r.get("worker", ""), "node": r.get("node", ""), "gpu": r.get("gpu", ""),
            "reused": " ".join(r.get("reused") or []),
        }
        self.rows.append(entry)
        return entry

    def count(self, status: str) -> int:
        return sum(1 for r in self.rows if r["status"] == status)

    def totals(self, seconds: float, workers: list[dict]) -> dict:
        made = self.count("made")
        measured = [r for r in self.rows if r["status"] == "made" and r["gpu_joules"] is not None]
        joules = sum(r["gpu_joules"] for r in measured)
        window_j = [w["energy"]["gpu_joules_gross"] for w in workers
                    if isinstance(w.get("energy"), dict) and w["energy"].get("gpu_joules_gross") is not None]
        busy = [w["gpu_busy"] for w in workers if w.get("gpu_busy") is not None]
        reasons = sorted({w.get("gpu_busy_reason") or w.get("error") or "" for w in workers
                          if w.get("gpu_busy") is None and (w.get("rows") or w.get("error"))})
        return {
            "rows": len(self.rows), **{s.replace(" ", "_"): self.count(s) for s in STATUSES},
            "seconds": round(seconds, 3),
            "images_per_hour": round(made / seconds * 3600, 2) if made and seconds > 0 else None,
            "row_energy_j": round(joules, 3) if measured else None,
            "row_energy_rows": len(measured),
            "energy_per_image_j": round(sum(window_j) / made, 3) if window_j and made else None,
            "gpu_busy_share": round(sum(busy) / len(busy), 4) if busy else None,
            "gpu_busy_note": "" if busy else "unavailable: " + ("; ".join(r for r in reasons if r) or "no worker ran a row"),
        }

    def write(self, outdir: Path, seconds: float, workers: list[dict], extra: dict | None = None) -> dict:
        """batch.csv and batch.json, each written atomically (replacing the previous run's)."""
        from figurine.outputs import atomic_write

        totals = self.totals(seconds, workers)
        rows = sorted(self.rows, key=lambda r: r["line"])
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
        writer.writeheader()
        for r in rows:
            writer.writerow({k: "" if r[k] is None else r[k] for k in CSV_FIELDS})
        data = buf.getvalue().encode()
        atomic_write(Path(outdir) / "batch.csv", lambda f: f.write(data), force=True)
        body = json.dumps({"rows": rows, "totals": totals, "workers": workers, **(extra or {})},
                          indent=2, sort_keys=True, default=str).encode()
        atomic_write(Path(outdir) / "batch.json", lambda f: f.write(body), force=True)
        return totals

    def totals_line(self, totals: dict) -> str:
        rate = f": {totals['images_per_hour']:g} images per hour" if totals["images_per_hour"] else ""
        busy = (f"; GPU busy {totals['gpu_busy_share']:.0%}" if totals["gpu_busy_share"] is not None
                else f"; GPU busy share {totals['gpu_busy_note']}")
        return (f"{totals['made']} made, {totals['done_earlier']} done earlier, {totals['failed']} failed, "
                f"{totals['bad']} bad, {totals['interrupted']} interrupted in {totals['seconds']:.0f} s{rate}{busy}")


class Progress:
    """A tqdm bar over the rows to make, with the failures so far; on stderr."""

    def __init__(self, total: int, enabled: bool = True):
        from tqdm import tqdm

        self.failed = 0
        self.bar = tqdm(total=total, unit="row", desc="figurine batch", disable=not enabled or total == 0,
                        dynamic_ncols=True, smoothing=0.1)
        self.bar.set_postfix(failed=0)

    def done(self, status: str, message: str | None = None) -> None:
        if status == "failed":
            self.failed += 1
            self.bar.set_postfix(failed=self.failed)
        if message:
            self.bar.write(message)
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()
