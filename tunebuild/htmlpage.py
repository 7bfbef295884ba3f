"""HTML pieces shared by the report page, `tunebuild audit --format html` and `tunebuild diff
--format html`.

One self-contained page: styles inline, no script, no request to any network. Every piece takes
plain values and returns an HTML string; text from data is escaped here (`esc`), and a cell or
part that is already HTML is marked with `Html`. Numbers are shown as the outputs hold them
(`num`, `fixed`), with the exact value in a `<data value>` element where a reader or a test may
want it.
"""

from __future__ import annotations

import html

CSS = """
:root{--ink:#1d232b;--muted:#5b6470;--line:#d6dbe1;--soft:#f3f5f7;--error:#a4161a;--warning:#8a5a00;
--info:#1f5f99;--ok:#1b6e3a}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans",sans-serif;
color:var(--ink);background:#fff}
header,main{max-width:1180px;margin:0 auto;padding:0 20px}
header{padding-top:18px;border-bottom:1px solid var(--line)}
h1{font-size:22px;margin:0 0 4px}
h2{font-size:18px;margin:28px 0 8px;padding-top:8px;border-top:2px solid var(--ink)}
h3{font-size:15px;margin:18px 0 6px}
p{margin:6px 0;max-width:90ch}
.sub{color:var(--muted);margin:0 0 10px}
nav ul{list-style:none;display:flex;flex-wrap:wrap;gap:4px 14px;padding:0;margin:8px 0 12px}
nav a{color:var(--info)}
table{border-collapse:collapse;margin:8px 0 12px;font-size:13px}
caption{text-align:left;padding:2px 0}
th,td{border-bottom:1px solid var(--line);padding:3px 8px;text-align:left;vertical-align:top}
th{background:var(--soft);font-weight:600}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.text{max-width:60ch;overflow-wrap:anywhere}
pre{white-space:pre-wrap;overflow-wrap:anywhere;background:var(--soft);padding:6px 8px}
code,.id{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12px}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(480px,1fr));gap:8px 24px;
align-items:start}
figure{margin:8px 0 12px}
figcaption{font-weight:600;margin-bottom:4px}
svg.chart{max-width:100%;height:auto;font:12px system-ui,sans-serif}
svg.chart text{fill:var(--ink)}
.headline{font-size:20px;font-weight:600}
.tiles{display:flex;flex-wrap:wrap;gap:10px;margin:10px 0}
.tile{border:1px solid var(--line);border-radius:6px;padding:8px 12px;min-width:150px}
.tile b{display:block;font-size:20px;font-variant-numeric:tabular-nums}
.tile span{color:var(--muted);font-size:12px}
ul.findings{padding:0;list-style:none}
ul.findings li{margin:4px 0;padding:4px 8px;border-left:4px solid var(--line)}
.sev{display:inline-block;min-width:64px;font-weight:700;text-transform:uppercase;font-size:11px}
li.error{border-color:var(--error)} li.error .sev{color:var(--error)}
li.warning{border-color:var(--warning)} li.warning .sev{color:var(--warning)}
li.info{border-color:var(--info)} li.info .sev{color:var(--info)}
li.ok{border-color:var(--ok)} li.ok .sev{color:var(--ok)}
.muted{color:var(--muted)}
@media print{
nav{display:none}
body{font-size:11px}
header,main{max-width:none;padding:0}
h2{break-after:avoid}
figure,table,.tile{break-inside:avoid}
a{color:inherit;text-decoration:none}
}
"""


class Html(str):
    """A string that is already HTML: table cells and parts pass it through unescaped."""


def esc(value) -> Html:
    """Text from data, escaped for HTML (None shows as empty)."""
    return (
        value if isinstance(value, Html) else Html(html.escape("" if value is None else str(value)))
    )


def num(value) -> str:
    """An integer with thousands separators; a float as its shortest repr (as the output has it)."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def fixed(value: float, digits: int = 4) -> Html:
    """A float rounded for reading, with the exact output value in `<data value>`."""
    return Html(f'<data value="{value!r}">{value:.{digits}f}</data>')


def interval(scores: dict, metric: str, digits: int = 4) -> Html:
    """`value [lo, hi]` of a metric whose bootstrap interval is `<metric>_ci_lo/_ci_hi` in the same
    dict."""
    lo, hi = scores[f"{metric}_ci_lo"], scores[f"{metric}_ci_hi"]
    return Html(f"{fixed(scores[metric], digits)} [{fixed(lo, digits)}, {fixed(hi, digits)}]")


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def cell(value, tag: str = "td") -> str:
    if is_number(value):
        return f'<{tag} class="n">{num(value)}</{tag}>'
    if isinstance(value, Html):
        return f"<{tag}>{value}</{tag}>"
    text = esc(value)
    wide = ' class="text"' if len(text) > 40 else ""
    return f"<{tag}{wide}>{text}</{tag}>"


def table(headers: list[str], rows: list[list], caption: str | None = None) -> Html:
    """A table: numbers right-aligned, text escaped; `none` when there are no rows."""
    if not rows:
        return Html(f"<p class='muted'>{esc(caption) + ': ' if caption else ''}none</p>")
    numeric = [all(is_number(r[i]) for r in rows) for i in range(len(headers))]
    head = "".join(
        f'<th scope="col"{" class=n" if n else ""}>{esc(h)}</th>' for h, n in zip(headers, numeric)
    )
    body = "".join("<tr>" + "".join(cell(c) for c in row) + "</tr>" for row in rows)
    cap = f"<caption class='muted'>{esc(caption)}</caption>" if caption else ""
    return Html(f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")


def para(*parts) -> Html:
    return Html("<p>" + "".join(esc(p) for p in parts) + "</p>")


def code(value) -> Html:
    return Html(f"<code>{esc(value)}</code>")


def figure(caption: str, svg: str) -> Html:
    return Html(f"<figure><figcaption>{esc(caption)}</figcaption>{svg}</figure>")


def tiles(items: list[tuple[str, object]]) -> Html:
    """Big numbers with a short label each."""
    body = "".join(
        f"<div class='tile'><b>{esc(num(v))}</b><span>{esc(k)}</span></div>" for k, v in items
    )
    return Html(f"<div class='tiles'>{body}</div>")


SEVERITIES = ("error", "warning", "info", "ok")


def findings(items: list[dict]) -> Html:
    """Findings, most severe first: each {severity, kind, message}; severity is written out, not
    only coloured."""
    if not items:
        return Html(
            "<ul class='findings'><li class='ok'><span class='sev'>ok</span> no findings</li></ul>"
        )
    ordered = sorted(
        items, key=lambda f: (SEVERITIES.index(f["severity"]), f["kind"], f["message"])
    )
    rows = "".join(
        f"<li class='{f['severity']}'><span class='sev'>{esc(f['severity'])}</span> "
        f"<b>{esc(f['kind'])}</b>: {esc(f['message'])}</li>"
        for f in ordered
    )
    return Html(f"<ul class='findings'>{rows}</ul>")


def section(ident: str, title: str, *parts: str) -> tuple[str, str, Html]:
    body = "".join(p for p in parts if p)
    return (
        ident,
        title,
        Html(
            f'<section id="{esc(ident)}" aria-labelledby="h-{esc(ident)}">'
            f'<h2 id="h-{esc(ident)}">{esc(title)}</h2>{body}</section>'
        ),
    )


def page(title: str, subtitle: str, sections: list[tuple[str, str, Html]]) -> str:
    """The whole document: head with inline styles, a table of contents, the sections."""
    toc = "".join(f'<li><a href="#{esc(i)}">{esc(t)}</a></li>' for i, t, _ in sections)
    body = "".join(s for _, _, s in sections)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        '<meta http-equiv="Content-Security-Policy" '
        "content=\"default-src 'none'; style-src 'unsafe-inline'; "
        'img-src data:">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head>\n<body><header><h1>{esc(title)}</h1>"
        f"<p class='sub'>{esc(subtitle)}</p>"
        f"<nav aria-label='Sections'><ul>{toc}</ul></nav></header>\n"
        f"<main>{body}</main></body></html>\n"
    )
