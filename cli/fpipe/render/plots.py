"""Small hand-made SVG plots for model cards: ROC, precision-recall, calibration, feature importance,
predicted vs actual. No plotting library; deterministic text output (same inputs, same bytes)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

import numpy as np

W, H = 360, 300
PAD_L, PAD_R, PAD_T, PAD_B = 48, 16, 30, 42
FONT = 'font-family="Helvetica,Arial,sans-serif" font-size="11"'
BLUE, GREY, ORANGE = "#2563eb", "#9ca3af", "#ea580c"


def _xy(x: float, y: float) -> tuple[float, float]:
    pw, ph = W - PAD_L - PAD_R, H - PAD_T - PAD_B
    return PAD_L + x * pw, PAD_T + (1 - y) * ph


def _polyline(xs: Sequence[float] | np.ndarray, ys: Sequence[float] | np.ndarray, color: str, dash: bool = False, max_points: int = 400) -> str:
    n = len(xs)
    idx: Sequence[int] = np.unique(np.linspace(0, n - 1, min(n, max_points)).astype(int)).tolist() if n else []
    pts = " ".join("{:.1f},{:.1f}".format(*_xy(float(xs[i]), float(ys[i]))) for i in idx)
    extra = ' stroke-dasharray="4 3"' if dash else ""
    return f'<polyline fill="none" stroke="{color}" stroke-width="1.8"{extra} points="{pts}"/>'


def _frame(
    title: str, xlabel: str, ylabel: str, body: list[str], legend: Sequence[tuple[str, str]] = (), legend_bottom: bool = False
) -> str:
    x0, y0 = _xy(0, 0)
    x1, y1 = _xy(1, 1)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}">',
        f'<rect width="{W}" height="{H}" fill="white"/>',
        f'<text x="{W / 2:.0f}" y="18" text-anchor="middle" {FONT} font-weight="bold">{escape(title)}</text>',
        f'<rect x="{x0:.1f}" y="{y1:.1f}" width="{x1 - x0:.1f}" height="{y0 - y1:.1f}" fill="none" stroke="#374151"/>',
    ]
    for t in (0.0, 0.25, 0.5, 0.75, 1.0):
        gx, _ = _xy(t, 0)
        _, gy = _xy(0, t)
        out.append(f'<line x1="{gx:.1f}" y1="{y0:.1f}" x2="{gx:.1f}" y2="{y0 + 4:.1f}" stroke="#374151"/>')
        out.append(f'<text x="{gx:.1f}" y="{y0 + 15:.1f}" text-anchor="middle" {FONT}>{t:g}</text>')
        out.append(f'<line x1="{x0 - 4:.1f}" y1="{gy:.1f}" x2="{x0:.1f}" y2="{gy:.1f}" stroke="#374151"/>')
        out.append(f'<text x="{x0 - 7:.1f}" y="{gy + 4:.1f}" text-anchor="end" {FONT}>{t:g}</text>')
    out.append(f'<text x="{(x0 + x1) / 2:.1f}" y="{H - 8}" text-anchor="middle" {FONT}>{escape(xlabel)}</text>')
    out.append(
        f'<text x="12" y="{(y0 + y1) / 2:.1f}" text-anchor="middle" {FONT} '
        f'transform="rotate(-90 12 {(y0 + y1) / 2:.1f})">{escape(ylabel)}</text>'
    )
    out.extend(body)
    for i, (label, color) in enumerate(legend):
        ly = (y0 - 8 - 14 * (len(legend) - 1 - i)) if legend_bottom else (y1 + 14 + 14 * i)
        out.append(f'<line x1="{x1 - 120:.1f}" y1="{ly - 4:.1f}" x2="{x1 - 104:.1f}" y2="{ly - 4:.1f}" stroke="{color}" stroke-width="2"/>')
        out.append(f'<text x="{x1 - 100:.1f}" y="{ly:.1f}" {FONT}>{escape(label)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def roc_svg(fpr: np.ndarray, tpr: np.ndarray, auc: float) -> str:
    body = [_polyline([0, 1], [0, 1], GREY, dash=True), _polyline(fpr, tpr, BLUE)]
    return _frame("ROC (test)", "false positive rate", "true positive rate", body, [(f"model AUC {auc:.3f}", BLUE), ("baseline 0.5", GREY)], legend_bottom=True)


def pr_svg(recall: np.ndarray, precision: np.ndarray, pr_auc: float, prior: float) -> str:
    body = [_polyline([0, 1], [prior, prior], GREY, dash=True), _polyline(recall, precision, BLUE)]
    legend = [(f"model AP {pr_auc:.3f}", BLUE), (f"baseline {prior:.3f}", GREY)]
    return _frame("Precision-recall (test)", "recall", "precision", body, legend)


def calibration_svg(table: Sequence[Mapping[str, float]]) -> str:
    xs = [float(r["mean_predicted"]) for r in table]
    ys = [float(r["observed_rate"]) for r in table]
    body = [_polyline([0, 1], [0, 1], GREY, dash=True), _polyline(xs, ys, BLUE)]
    for x, y in zip(xs, ys, strict=True):
        cx, cy = _xy(x, y)
        body.append(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="3" fill="{BLUE}"/>')
    return _frame("Calibration (test)", "mean predicted probability", "observed rate", body, [("model", BLUE), ("perfect", GREY)], legend_bottom=True)


def scatter_svg(actual: np.ndarray, predicted: np.ndarray, max_points: int = 600) -> str:
    a = np.asarray(actual, dtype=np.float64)
    p = np.asarray(predicted, dtype=np.float64)
    lo = float(min(a.min(), p.min())) if len(a) else 0.0
    hi = float(max(a.max(), p.max())) if len(a) else 1.0
    span = (hi - lo) or 1.0
    idx: Sequence[int] = np.unique(np.linspace(0, len(a) - 1, min(len(a), max_points)).astype(int)).tolist() if len(a) else []
    body = [_polyline([0, 1], [0, 1], GREY, dash=True)]
    for i in idx:
        cx, cy = _xy((p[i] - lo) / span, (a[i] - lo) / span)
        body.append(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="1.6" fill="{BLUE}" fill-opacity="0.5"/>')
    return _frame(f"Predicted vs actual (test, {lo:.3g} to {hi:.3g})", "predicted", "actual", body)


def importance_svg(importance: Mapping[str, float], top: int = 20) -> str:
    items = sorted(importance.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
    row_h, label_w, bar_w = 18, 170, 150
    height = PAD_T + row_h * len(items) + 16
    width = label_w + bar_w + 70
    vmax = max((v for _, v in items), default=1.0) or 1.0
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{width / 2:.0f}" y="18" text-anchor="middle" {FONT} font-weight="bold">Feature importance (share of gain)</text>',
    ]
    for i, (name, v) in enumerate(items):
        y = PAD_T + i * row_h
        w = bar_w * v / vmax
        out.append(f'<text x="{label_w - 6}" y="{y + 12}" text-anchor="end" {FONT}>{escape(name)}</text>')
        out.append(f'<rect x="{label_w}" y="{y + 2}" width="{w:.1f}" height="{row_h - 5}" fill="{ORANGE}"/>')
        out.append(f'<text x="{label_w + w + 4:.1f}" y="{y + 12}" {FONT}>{v:.1%}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"
