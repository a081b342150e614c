"""Charts of a sensitivity sweep and of recipes (DataFrame -> plotly Figure, no Streamlit):
the layers x projections heatmap, the sorted bars, the estimator's scatter, and the predicted
frontier with measured points beside it."""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from qcompare.i18n import catalogue as i18n
from qcompare.methods.mixed import ROLES

FLOOR = 1e-9           # KLDs at or below this (0, or rounding) are drawn at the floor on log axes


def heatmap(table: pd.DataFrame, bits: int, lang: str = "en") -> go.Figure:
    """Layers (rows, the first on top) x projections (columns) coloured by log10 of the KLD of
    quantizing that unit alone at `bits`; a block sweep has one column."""
    part = table[table["bits"] == bits]
    roles = [r for r in ROLES if r in set(part["role"])] or ["block"]
    grid = part.pivot_table(index="layer", columns="role", values="kld", aggfunc="first")
    grid = grid.reindex(columns=roles)
    z = np.log10(np.clip(grid.to_numpy(dtype=float), FLOOR, None))
    text = [[f"layer {layer} {role}: KLD {v:.3g}" for role, v in zip(roles, row)]
            for layer, row in zip(grid.index, grid.to_numpy(dtype=float))]
    fig = go.Figure(go.Heatmap(z=z, x=roles, y=[str(i) for i in grid.index], colorscale="Reds",
                               hovertext=text, hoverinfo="text",
                               colorbar={"title": {"text": "log10 KLD"}}))
    fig.update_layout(title=i18n.t("schart.heat_title", lang, bits=bits),
                      xaxis={"title": {"text": i18n.t("schart.projection", lang)}, "side": "top"},
                      yaxis_title=i18n.t("schart.layer", lang),
                      yaxis={"autorange": "reversed", "type": "category"},
                      height=max(320, 18 * len(grid) + 160), margin={"t": 110})
    return fig


def bars(table: pd.DataFrame, bits: int, top: int = 25, lang: str = "en") -> go.Figure:
    """The `top` most sensitive units at `bits`, largest first (log x)."""
    part = table[table["bits"] == bits].sort_values("kld", ascending=False).head(top)
    part = part.iloc[::-1]
    fig = go.Figure(go.Bar(x=np.clip(part["kld"], FLOOR, None), y=part["unit"], orientation="h",
                           error_x={"type": "data", "array": 2 * part["kld_se"], "visible": True},
                           hovertemplate="%{y}: KLD %{x:.3g}<extra></extra>",
                           marker_color="#E15F99"))
    fig.update_layout(title=i18n.t("schart.bars_title", lang, bits=bits),
                      xaxis_title=i18n.t("schart.bars_x", lang),
                      xaxis_type="log", yaxis_title=i18n.t("schart.bars_y", lang),
                      height=max(320, 20 * len(part) + 120), margin={"t": 50})
    return fig


def estimator_scatter(table: pd.DataFrame, lang: str = "en") -> go.Figure:
    """Reconstruction error tr(dW H dW^T) against the measured KLD, one colour per width."""
    fig = go.Figure()
    for b, g in table.groupby("bits"):
        fig.add_trace(go.Scatter(x=np.clip(g["recon_err"], FLOOR, None), y=np.clip(g["kld"], FLOOR, None),
                                 mode="markers", name=i18n.t("rpage.bit", lang, b=b), text=g["unit"],
                                 hovertemplate="%{text}: recon %{x:.3g}, KLD %{y:.3g}<extra></extra>"))
    fig.update_layout(title=i18n.t("schart.est_title", lang), xaxis_title=i18n.t("schart.est_x", lang),
                      yaxis_title=i18n.t("schart.est_y", lang), xaxis_type="log", yaxis_type="log",
                      height=420, margin={"t": 50})
    return fig


def frontier(front: pd.DataFrame, uniform: pd.DataFrame, measured: pd.DataFrame | None = None,
             target_mib: float | None = None, lang: str = "en") -> go.Figure:
    """Predicted frontier (line: best recipe per size), the uniform settings' predictions
    (hollow), and measured rows (filled: uniform and recipe runs) on size x KLD."""
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=front["size_mib"], y=np.clip(front["predicted_kld"], FLOOR, None),
                             mode="lines+markers", name=i18n.t("schart.front_line", lang), line={"shape": "hv"},
                             marker={"size": 5}, text=front["recipe"],
                             hovertemplate="%{text}<extra>predicted</extra>"))
    fig.add_trace(go.Scatter(x=uniform["size_mib"], y=np.clip(uniform["predicted_kld"], FLOOR, None),
                             mode="markers+text", name=i18n.t("schart.front_uniform", lang),
                             text=[i18n.t("rpage.bit", lang, b=b) for b in uniform["bits"]],
                             textposition="top center",
                             marker={"size": 12, "symbol": "circle-open", "line": {"width": 2}}))
    if measured is not None and not measured.empty:
        for kind, symbol in (("uniform", "circle"), ("recipe", "diamond")):
            part = measured[measured["kind"] == kind]
            if part.empty:
                continue
            fig.add_trace(go.Scatter(
                x=part["weights_mib"], y=np.clip(part["kld_mean"], FLOOR, None), mode="markers",
                name=i18n.t("schart.front_measured", lang, kind=i18n.t(f"schart.kind_{kind}", lang)),
                text=part["label"],
                marker={"size": 13, "symbol": symbol},
                hovertemplate="%{text}: %{x:.2f} MiB, KLD %{y:.4g}<extra>measured</extra>"))
    if target_mib:
        fig.add_vline(x=target_mib, line_dash="dash", annotation_text=i18n.t("schart.target", lang, mib=target_mib))
    positive = [v for v in list(front["predicted_kld"]) + list(uniform["predicted_kld"]) if v > FLOOR]
    if positive:          # the all-16-bit end (KLD 0) would stretch the log axis to the floor
        fig.update_yaxes(range=[np.log10(min(positive) / 3), np.log10(max(positive) * 3)])
    fig.update_layout(title=i18n.t("schart.front_title", lang), xaxis_title=i18n.t("schart.front_x", lang),
                      yaxis_title=i18n.t("schart.front_y", lang),
                      yaxis_type="log", height=480, margin={"t": 50},
                      legend={"orientation": "h", "y": -0.2})
    return fig


def recipe_map(bits_map: dict[str, int], layers: int, lang: str = "en") -> go.Figure:
    """The bits a recipe gives each unit: layers x projections (or one column for blocks)."""
    blocks = all("." not in u for u in bits_map)
    roles = ["block"] if blocks else list(ROLES)
    z = np.full((layers, len(roles)), np.nan)
    for u, b in bits_map.items():
        layer, _, role = u.partition(".")
        z[int(layer), roles.index(role or "block")] = b
    fig = go.Figure(go.Heatmap(z=z, x=roles, y=[str(i) for i in range(layers)],
                               colorscale="Viridis", zmin=2, zmax=16, text=z,
                               texttemplate="%{text:.0f}", colorbar={"title": {"text": i18n.t("schart.bits", lang)}}))
    fig.update_layout(title=i18n.t("schart.map_title", lang), xaxis_title=i18n.t("schart.projection", lang),
                      yaxis_title=i18n.t("schart.layer", lang), yaxis={"autorange": "reversed", "type": "category"},
                      height=max(320, 18 * layers + 140), margin={"t": 50})
    return fig
