"""`snakemake --report report.html` on the tiny pipeline: a self-contained HTML holding every report item."""

import base64
import json

import pytest
from PIL import Image
from snakemake_runner import TINY_CONFIG, run_snakemake

# path in the report -> (category, subcategory, mime type, a phrase of its rendered caption)
ITEMS = {
    "results/report/training_loss.png": ("2 Training", "curves", "image/png", "Training loss"),
    "results/report/cluster_entropy.png": ("2 Training", "curves", "image/png", "Cluster-usage entropy"),
    "results/report/tracking_accuracy.png": ("1 Tracking", "accuracy", "image/png", "TAP-Vid metrics"),
    "results/eval/table.csv": ("3 Evaluation", "tables", "text/csv", "The full evaluation table"),
    "results/eval/summary.csv": ("3 Evaluation", "tables", "text/csv", "mean and standard deviation"),
    "results/report/evaluation_tables.html": ("3 Evaluation", "tables", "text/html", "shown inline"),
    "results/eval/deltas.png": ("3 Evaluation", "figures", "image/png", "Change of each metric"),
    "results/eval/examples.png": ("3 Evaluation", "figures", "image/png", "Hummingbird prediction"),
    **{
        f"results/report/clips/clip_{i}.gif": ("4 Clips", "GIF files", "image/gif", "One animated GIF per clip")
        for i in range(3)
    },
    "results/report/clips/clips.html": ("4 Clips", "animations", "text/html", "cluster keeps its colour over time"),
}


def report_var(html: str, name: str):
    """The JSON value of ``var <name> = ...`` in the report's data scripts (the last one: the JS bundle has others)."""
    start = html.rindex(f"var {name} = ") + len(f"var {name} = ")
    return json.JSONDecoder().raw_decode(html, start)[0]


@pytest.mark.slow
@pytest.mark.distributed
def test_report_html(tiny_pipeline):
    workdir = tiny_pipeline
    report_dir = workdir / "results" / "report"
    # `snakemake --cores all` made the report's figures (they are inputs of rule all).
    with Image.open(report_dir / "clips" / "clip_0.gif") as im:
        assert im.n_frames == 4 and im.info["loop"] == 0  # the tiny config's 4-frame clips, looping
        assert im.size[0] > 3 * (im.size[1] - 16)  # three panels side by side under a title strip

    res = run_snakemake(workdir, "--report", "report.html", "--configfile", str(TINY_CONFIG))
    assert res.returncode == 0, res.stderr[-3000:]
    html = (workdir / "report.html").read_text()
    categories, results = report_var(html, "categories"), report_var(html, "results")
    assert set(results) == set(ITEMS), sorted(set(results) ^ set(ITEMS))
    for path, (category, subcategory, mime, caption) in ITEMS.items():
        assert path in categories[category][subcategory], path
        entry = results[path]
        assert entry["mime_type"] == mime and entry["name"] == path.rsplit("/", 1)[1]
        assert caption in entry["caption"], (path, caption)
        # Self-contained: the file itself travels in the HTML, byte for byte.
        data = base64.b64decode(entry["data_uri"].split("base64,", 1)[1])
        assert data == (workdir / path).read_bytes(), path
    # Captions are rendered with the run's config and params (Jinja), not left as templates.
    captions = " ".join(e["caption"] for e in results.values())
    assert "{{" not in captions and "ln K = ln 8" in captions and "k = 6" in captions
    # The global description, rendered with the config.
    assert "motion-guided dense self-supervised learning" in report_var(html, "workflow_desc")
    assert "test_vit" in report_var(html, "workflow_desc")
    # The gallery page shows the GIFs inline.
    gallery = base64.b64decode(results["results/report/clips/clips.html"]["data_uri"].split("base64,", 1)[1])
    assert gallery.decode().count("data:image/gif;base64,") == 3


def test_report_needs_only_the_main_install():
    """`snakemake --report` imports pygments, which Snakemake does not install: mosic must depend on it itself."""
    import re
    import tomllib

    from snakemake_runner import REPO

    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {re.match(r"[A-Za-z0-9_.\-]+", d).group(0).lower() for d in deps}
    assert "pygments" in names
