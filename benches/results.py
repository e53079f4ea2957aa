"""The main job's results as data, and the report printed from them.

Figures (``report.Figure``) hold the measurements; :func:`headline`, :func:`ffcv_ratios` and
:func:`target_checks` derive records with numeric fields from them; :class:`Results` gathers every record of a
run. The saved JSON and each section of the printed report are made from those records, never from text.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from benches import ladder
from benches.report import Figure, format_table, series_name


def fastest_torchvision(figures: list[Figure], group: str, match: dict[str, Any]) -> Figure | None:
    """The fastest torchvision figure of ``group`` whose config matches ``match``."""
    cands = [f for f in figures if f.group == group and f.loader.startswith("torchvision")
             and all(f.config.get(k) == v for k, v in match.items())]
    return max(cands, key=lambda f: f.images_per_s, default=None)


def headline(figures: list[Figure], limits: dict[str, Any] | None, workers: int) -> list[dict[str, Any]]:
    """Per rung and storage: ours / fastest torchvision, ours / all-core decode limit, and what the rung adds.

    ``added_core_us_per_image``: core-microseconds per image (both views) this rung costs over the previous
    measured rung of the same storage, ``workers * (1/rate - 1/previous_rate)``; negative values are noise.
    """
    from benches.decode_limit import limit_rate

    limit = limit_rate(limits, workers, 1) if limits else None
    ours = sorted((f for f in figures if f.group == "ladder" and f.loader == "fastssl"),
                  key=lambda f: (f.config["storage"], f.config["rung"]))
    rows, previous = [], {}
    for f in ours:
        best = fastest_torchvision(figures, "ladder", {"rung": f.config["rung"], "size": f.config["size"]})
        before = previous.get(f.config["storage"])
        previous[f.config["storage"]] = f
        rows.append({
            "rung": f.config["rung"], "name": ladder.RUNG_NAMES[f.config["rung"]], "storage": f.config["storage"],
            "fastssl_images_per_s": f.images_per_s,
            "fastest_torchvision": best.loader if best else None,
            "torchvision_files": best.config.get("files") if best else None,
            "torchvision_images_per_s": best.images_per_s if best else None,
            "speedup_vs_fastest_torchvision": f.images_per_s / best.images_per_s if best else None,
            "fraction_of_decode_limit": f.images_per_s / limit if limit and f.config["storage"] in ("jpeg", "file")
            else None,
            "added_core_us_per_image": (workers * 1e6 * (1 / f.images_per_s - 1 / before.images_per_s)
                                        if before else None),
        })
    return rows


def ffcv_ratios(figures: list[Figure]) -> dict[str, float]:
    """Ours / FFCV on the same stored files, one view and two views (FFCV decodes once per view)."""
    rates = {(f.loader.startswith("ffcv"), f.config.get("n_views")): f.images_per_s
             for f in figures if f.group == "ffcv"}
    out = {}
    for n in (1, 2):
        ffcv, ours = rates.get((True, n)), rates.get((False, n))
        if ffcv and ours:
            out[f"{n}view_fastssl_over_ffcv"] = ours / ffcv
    return out


def target_checks(rows: list[dict[str, Any]], ratios: dict[str, float]) -> list[dict[str, Any]]:
    """The product's speed goals against this run's figures (goals to report, not test assertions)."""
    checks = []

    def check(name: str, value: float | None, goal: float) -> None:
        if value is not None:
            checks.append({"target": name, "value": value, "goal": goal, "met": value >= goal})

    for r in rows:
        rung, storage = r["rung"], r["storage"]
        if storage in ("jpeg", "file"):
            if rung == 1:
                check("jpeg rung 1: two views / all-core decode limit", r["fraction_of_decode_limit"], 0.8)
            check(f"jpeg rung {rung}: x fastest torchvision", r["speedup_vs_fastest_torchvision"],
                  5.0 if rung == 5 else 3.0)
        elif storage == "raw":
            check(f"raw rung {rung}: x fastest torchvision", r["speedup_vs_fastest_torchvision"], 5.0)
    check("two views: x FFCV two pipelines", ratios.get("2view_fastssl_over_ffcv"), 1.8)
    check("one view: x FFCV one view", ratios.get("1view_fastssl_over_ffcv"), 1.0)
    return checks


def series_name_of_row(row: dict[str, Any]) -> str:
    files = row.get("torchvision_files")
    return row["fastest_torchvision"] + (f" ({files} files)" if files else "")


def peer_table(figures: list[Figure], groups: tuple[str, ...] = ("ladder", "one-view")) -> list[dict[str, Any]]:
    """Every loader side by side: one record per (group, rung, views) with images/s per series."""
    rows: dict[tuple[str, int, str], dict[str, Any]] = {}
    for f in figures:
        if f.group in groups and "rung" in f.config:
            key = (f.group, f.config["rung"], f.config.get("views", ""))
            row = rows.setdefault(key, {"group": key[0], "rung": key[1], "views": key[2], "images_per_s": {}})
            row["images_per_s"][series_name(f)] = f.images_per_s
    return [rows[k] for k in sorted(rows, key=lambda k: (groups.index(k[0]), k[1], k[2]))]


def format_peer_table(rows: list[dict[str, Any]]) -> str:
    """Columns: one per series in order of first appearance; '-' where a loader did not run that row."""
    series = list(dict.fromkeys(name for r in rows for name in r["images_per_s"]))
    head = ["group", "rung", "views"] + series
    table = [head] + [[r["group"], f"{r['rung']}: {ladder.RUNG_NAMES[r['rung']]}", r["views"]]
                      + [f"{r['images_per_s'][s]:,.0f}" if s in r["images_per_s"] else "-" for s in series]
                      for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(head))]
    return "\n".join("  ".join(c.rjust(w) if i >= 3 else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths)))
                     .rstrip() for row in table)


def format_headline(rows: list[dict[str, Any]]) -> str:
    lines = ["rung  augmentations  storage  fastssl img/s  fastest torchvision (img/s)                      speedup"
             "  x decode limit  +core-us/img"]
    for r in rows:
        tv = f"{series_name_of_row(r)} ({r['torchvision_images_per_s']:,.0f})" if r["fastest_torchvision"] \
            else "-"
        sp = f"{r['speedup_vs_fastest_torchvision']:.2f}x" if r["speedup_vs_fastest_torchvision"] else "-"
        fr = f"{r['fraction_of_decode_limit']:.2f}" if r["fraction_of_decode_limit"] else "-"
        add = f"{r['added_core_us_per_image']:,.0f}" if r["added_core_us_per_image"] is not None else "-"
        lines.append(f"{r['rung']:<5d} {r['name']:<14s} {r['storage']:<8s} {r['fastssl_images_per_s']:>13,.0f}  "
                     f"{tv:<47s}  {sp:>7s}  {fr:>14s}  {add:>12s}")
    return "\n".join(lines)


@dataclass
class Results:
    """Everything one run measured, as data: the saved JSON and the printed report are both made from it."""

    machine: dict[str, Any]
    settings: dict[str, Any]
    dataset: dict[str, Any]
    figures: list[Figure]
    decode_limit: dict[str, Any] | None
    torchvision_blur: dict[str, Any]
    ffcv_status: str
    ffcv_ratios: dict[str, float]
    headline: list[dict[str, Any]]
    targets: list[dict[str, Any]]
    op_costs: dict[str, Any] | None
    total_seconds: float
    peers: dict[str, str] = field(default_factory=dict)  # peer -> status line (ran / skipped / failed: why)

    @property
    def title(self) -> str:
        return (f"{self.dataset['name']}: {self.dataset['images']} images, batch {self.settings['batch_size']}, "
                f"{self.settings['workers']} workers, {self.machine['cpu_model']}")

    def sections(self) -> dict[str, Any]:
        """The JSON sections besides the figures."""
        return {"machine": self.machine, "settings": self.settings, "dataset": self.dataset,
                "decode_limit": self.decode_limit, "torchvision_blur": self.torchvision_blur,
                "ffcv": {"status": self.ffcv_status, **self.ffcv_ratios}, "headline": self.headline,
                "targets": self.targets, "op_costs": self.op_costs, "total_seconds": self.total_seconds,
                "peers": {"status": self.peers, "table": peer_table(self.figures)}}


def format_decode_limit(limits: dict[str, Any]) -> str:
    lines = ["JPEG decode limit (stored files, images/s):"]
    for r in limits["rates"]:
        lines.append(f"  scale 1/{r['scale']}  {r['threads']} thread(s): {r['images_per_s']:,.0f} "
                     f"(min {r['images_per_s_min']:,.0f}, max {r['images_per_s_max']:,.0f})")
    return "\n".join(lines)


def format_targets(checks: list[dict[str, Any]]) -> str:
    lines = ["Speed goals (measured on this machine):"]
    lines += [f"  {'met   ' if c['met'] else 'MISSED'} {c['target']}: {c['value']:.2f} (goal >= {c['goal']})"
              for c in checks]
    return "\n".join(lines)


def format_op_costs(op_costs: dict[str, Any]) -> str:
    lines = ["Op costs (benches.op_costs: microseconds per image, one core):"]
    lines += [f"  {size}: " + ", ".join(f"{name} {r['ours_cpu_min_us']:.0f} "
                                       f"(torchvision {r['torchvision_cpu_min_us']:.0f})"
                                       for name, r in ops.items()) for size, ops in op_costs.items()]
    return "\n".join(lines)


def report(results: Results) -> str:
    """The printed report: one section per kind of result, each formatted from the records."""
    sections = [f"== {results.title}"]
    if results.decode_limit:
        sections.append(format_decode_limit(results.decode_limit))
    sections.append("All figures (median images/s over measured epochs; warm-up excluded):\n"
                    + format_table(results.figures))
    if results.headline:
        sections.append("Headline (two views; speedup against the FASTEST torchvision variant per rung):\n"
                        + format_headline(results.headline))
    table = peer_table(results.figures)
    if table:
        sections.append("Every loader side by side (images/s; stored files = the JPEG payloads of our jpeg file):\n"
                        + format_peer_table(table))
    sections.append(f"FFCV: {results.ffcv_status}"
                    + "".join(f"; {k} {v:.2f}x" for k, v in results.ffcv_ratios.items()))
    sections += [f"{peer.upper()}: {status}" for peer, status in results.peers.items()]
    if results.targets:
        sections.append(format_targets(results.targets))
    if results.op_costs:
        sections.append(format_op_costs(results.op_costs))
    return "\n\n".join(sections)
