"""A shareable report: one self-contained HTML file that opens offline.

It holds plotly.js once, inline (no CDN), and the interactive charts drawn with it (quality vs
size with the Pareto frontier, KL divergence vs size, the change of perplexity against the
baseline), the rows, the environment (versions, devices, the measured machine profile), each
row's spec JSON, and the notes a reader needs: where the model came from, the protocol, how
precise the numbers are, which rows are comparable. Published figures appear only when asked
for, in their own labelled section and as hollow markers. Pure: no Streamlit, no torch.
"""
from __future__ import annotations

import html
import json
import platform
from datetime import datetime, timezone

import pandas as pd

from qcompare.charts import tradeoff as charts
from qcompare.core import columns as table
from qcompare.stats.comparability import differing

CSS = """
body { font-family: system-ui, 'Noto Sans CJK JP', sans-serif; margin: 2rem auto; max-width: 1200px;
       color: #222; padding: 0 1rem; }
h1 { font-size: 1.7rem; } h2 { margin-top: 2.2rem; border-bottom: 1px solid #ddd; }
.wide { overflow-x: auto; max-width: 100%; }
table { border-collapse: collapse; font-size: 0.82rem; margin: 0.5rem 0; }
th, td { border: 1px solid #ddd; padding: 3px 6px; text-align: right; }
th { background: #f4f4f4; } td.s { text-align: left; }
.note { background: #fff8e1; border-left: 4px solid #f0b400; padding: 0.6rem 0.9rem; }
pre { background: #f6f8fa; padding: 0.6rem; overflow-x: auto; font-size: 0.78rem; }
"""


def _table_html(d: pd.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in d.columns)
    body = []
    for _, r in d.iterrows():
        cells = []
        for v in r:
            if isinstance(v, float):
                text, cls = ("—" if v != v else f"{v:.4g}"), ""
            else:
                text, cls = ("—" if v is None else str(v)), ' class="s"'
            cells.append(f"<td{cls}>{html.escape(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (f"<div class='wide'><table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}"
            "</tbody></table></div>")


def _versions(rows: pd.DataFrame) -> pd.DataFrame:
    cols = [c for c in ("device", "device_name", "python_version", "torch_version",
                        "transformers_version", "qcompare_version", "runner", "node")
            if c in rows]
    return rows[cols].drop_duplicates().reset_index(drop=True)


def _figures(rows: pd.DataFrame, published: pd.DataFrame | None, lang: str) -> list:
    figs = []
    for x, y in (("weights_mib", "ppl"), ("weights_mib", "kld_mean")):
        if rows[[x, y]].dropna().shape[0]:
            figs.append(charts.tradeoff(rows, x, y, log_y=(y == "kld_mean"), export=True,
                                        published=published, lang=lang))
    bars = charts.delta_bars(rows, "ppl", lang)
    if bars.data and len(bars.data[0].x):
        figs.append(bars)
    return figs


def build(rows: pd.DataFrame, title: str = "qcompare report", published: pd.DataFrame | None = None,
          machine: list[dict] | None = None, now: datetime | None = None, lang: str = "en") -> str:
    """The whole report as one HTML string (module doc), its words in `lang`."""
    from qcompare.i18n import catalogue as i18n

    def t(key: str, **values) -> str:
        return html.escape(i18n.t(f"report.{key}", lang, **values))

    if rows.empty:
        raise ValueError("no rows to report: widen the filters")
    now = now or datetime.now(timezone.utc)
    parts = [f"<!DOCTYPE html><html lang='{lang}'><head><meta charset='utf-8'>"
             f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>",
             f"<h1>{html.escape(title)}</h1>",
             f"<p>{t('intro', n=len(rows), when=f'{now:%Y-%m-%d %H:%M}')}</p>"]
    notes = sorted({str(n) for n in rows.get("model_note", pd.Series(dtype=str)).dropna() if n})
    mixed = differing(rows)
    parts.append(f"<h2>{t('notes')}</h2>")
    for n in notes:
        parts.append(f"<p class='note'><b>{t('model')}</b> {html.escape(n)}</p>")
    protocols = sorted({i18n.t("report.protocol_one", lang, protocol=p, window=w, tokens=n)
                        for p, w, n in zip(rows["protocol"], rows["window"], rows["tokens"])})
    parts.append(f"<p><b>{t('protocol')}</b> "
                 f"{t('protocol_text', protocols=', '.join(protocols), corpus=', '.join(sorted(set(map(str, rows['corpus'])))))}</p>")
    parts.append(f"<p><b>{t('precision')}</b> {t('precision_text')}</p>")
    if mixed:
        parts.append(f"<p class='note'>{t('mixed', fields=', '.join(mixed))}</p>")

    parts.append(f"<h2>{t('charts')}</h2>")
    for i, fig in enumerate(_figures(rows, published, lang)):
        fig.update_layout(width=None, autosize=True)
        parts.append(fig.to_html(full_html=False, include_plotlyjs=(i == 0),
                                 config={"displaylogo": False}, div_id=f"chart-{i}"))

    parts.append(f"<h2>{t('rows')}</h2>")
    shown = [c for c in table.names(table=True) if c in rows]
    parts.append(_table_html(rows[shown].rename(columns={"method_label": "method"})))

    parts.append(f"<h2>{t('environment')}</h2>")
    parts.append(_table_html(_versions(rows)))
    parts.append(f"<p>{t('written_on', platform=platform.platform(), python=platform.python_version())}</p>")
    for p in machine or []:
        parts.append("<p>" + t("machine", device=p["device"], name=p["device_name"],
                               threads=p["threads"], bandwidth=p["bandwidth_gbs"],
                               matmul=", ".join(f"{v:.0f} GFLOP/s ({k})"
                                                for k, v in p["matmul_gflops"].items()),
                               when=p["measured_at"]) + "</p>")

    if published is not None and not published.empty:
        parts.append(f"<h2>{t('published')}</h2>")
        parts.append(f"<p>{t('published_text')}</p>")
        cols = ["source", "where", "model", "hardware", "method", "bits", "weights_gb",
                "memory_gb", "gb_means", "decode_tok_s", "ppl", "ppl_text", "note"]
        parts.append(_table_html(published[cols]))

    parts.append(f"<h2>{t('specs')}</h2>")
    for _, r in rows.iterrows():
        spec = r.get("spec_json") or "{}"
        try:
            spec = json.dumps(json.loads(spec), indent=1, sort_keys=True)
        except ValueError:
            pass
        parts.append(f"<details><summary>{html.escape(str(r['method_label']))} — {t('key')} "
                     f"<code>{html.escape(str(r['key'])[:16])}</code></summary>"
                     f"<pre>{html.escape(spec)}</pre>"
                     f"<p>{html.escape(str(r.get('notes') or ''))}</p></details>")
    parts.append("</body></html>")
    return "\n".join(parts)
