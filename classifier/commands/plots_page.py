"""`classifier plots-page`: the page that `dvc plots show` fills, loading nothing from the network
(`make install` writes it).

DVC's own page loads Vega, Vega-Lite and vega-embed from a CDN, so offline every chart is blank.
This writes a template with the three inlined, bundled by the pinned vl-convert-python package
(not pasted by hand), to .dvc/tmp/plots_page.html, and points DVC's `plots.html_template` at it
in .dvc/config.local (this machine's settings, not committed).

    classifier plots-page
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import vl_convert

from classifier.core.paths import PROJECT_ROOT

TEMPLATE = Path("tmp/plots_page.html")  # as DVC reads the setting: relative to .dvc/
VEGA_LITE = "5.21"  # DVC's chart specs are Vega-Lite 5 ($schema .../vega-lite/v5.json)

# DVC puts each chart in the page as `<script>vegaEmbed('#id', spec)</script>`, run as the page
# loads; the bundle is an ES module, run once the page has loaded: until then, charts are queued.
QUEUE = """window.queuedCharts = [];
        window.vegaEmbed = (element, spec) => window.queuedCharts.push([element, spec]);"""
DRAIN = "window.vegaEmbed = vegaEmbed; for (const [element, spec] of window.queuedCharts) vegaEmbed(element, spec);"

PAGE = """<!DOCTYPE html>
<html>
<head>
    {refresh_tag}
    <meta charset="utf-8">
    <title>DVC plots</title>
    <script>
        QUEUE
    </script>
    <script type="module">
BUNDLE
    </script>
    <style>
        table { border-spacing: 15px; }
    </style>
</head>
<body>
    {plot_divs}
</body>
</html>
"""


def page() -> str:
    bundle = vl_convert.javascript_bundle(DRAIN, vl_version=VEGA_LITE).replace("</script", "<\\/script")
    return PAGE.replace("QUEUE", QUEUE).replace("BUNDLE", bundle)


def run(args: argparse.Namespace) -> None:
    path = PROJECT_ROOT / ".dvc" / TEMPLATE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page(), encoding="utf-8")
    command = [sys.executable, "-m", "dvc", "config", "--local", "plots.html_template", str(TEMPLATE)]
    subprocess.run(command, cwd=PROJECT_ROOT, check=True)
    shown = path.relative_to(PROJECT_ROOT)
    print(f"plots-page: {shown} (Vega {vl_convert.get_vega_version()}, offline) for `dvc plots show`")
