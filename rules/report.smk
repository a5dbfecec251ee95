"""Figures for the Snakemake report (`snakemake --report report.html`): training curves, tracking accuracy,
the evaluation tables as a page, and a few clips animated with their tracks and cluster maps."""

REPORT_DIR = f"{OUT}/report"
REPORT_CLIPS = 3  # clips animated for the report, taken from the first shard
# The clip animations compare the first seed's starting and trained mosic backbones.
REPORT_START, REPORT_TRAINED = run_name("start", CFG.runs.seeds[0]), run_name("mosic", CFG.runs.seeds[0])
REPORT_OUTPUTS = [
    f"{REPORT_DIR}/training_loss.png",
    f"{REPORT_DIR}/cluster_entropy.png",
    *([f"{REPORT_DIR}/tracking_accuracy.png"] if CFG.dataset.kind == "synthetic" else []),
    *([f"{REPORT_DIR}/evaluation_tables.html"] if PROTOCOLS_ON else []),
    f"{REPORT_DIR}/clips/clips.html",
]


rule training_curves:
    """Loss and cluster-usage entropy against the step, every run in one plot each."""
    input:
        metrics=[f"{TRAIN_ROOT}/{run}/metrics.csv" for run in RUNS],
        code=code_inputs("scripts/training_curves.py"),
    output:
        loss=report(
            f"{REPORT_DIR}/training_loss.png",
            caption="../report/training_loss.rst",
            category="2 Training",
            subcategory="curves",
        ),
        entropy=report(
            f"{REPORT_DIR}/cluster_entropy.png",
            caption="../report/cluster_entropy.rst",
            category="2 Training",
            subcategory="curves",
        ),
    log:
        f"{LOGS}/report/training_curves.log",
    conda:
        "../envs/train.yaml"
    params:
        runs=RUNS,
        num_prototypes=CFG.train.num_prototypes,
    script:
        "../scripts/training_curves.py"


rule tracking_figures:
    """TAP-Vid accuracy of the cached tracks against the synthetic ground truth (synthetic data only)."""
    input:
        metrics=f"{DS}/tracking_metrics.json",
        code=code_inputs("scripts/tracking_figures.py"),
    output:
        report(
            f"{REPORT_DIR}/tracking_accuracy.png",
            caption="../report/tracking_accuracy.rst",
            category="1 Tracking",
            subcategory="accuracy",
        ),
    log:
        f"{LOGS}/report/tracking_figures.log",
    conda:
        "../envs/train.yaml"
    script:
        "../scripts/tracking_figures.py"


rule evaluation_tables:
    """summary.csv and table.csv as one HTML page, so the report shows them inline."""
    input:
        summary=f"{EVAL_DIR}/summary.csv",
        table=f"{EVAL_DIR}/table.csv",
        code=code_inputs("scripts/evaluation_tables.py"),
    output:
        report(
            f"{REPORT_DIR}/evaluation_tables.html",
            caption="../report/evaluation_tables.rst",
            category="3 Evaluation",
            subcategory="tables",
        ),
    log:
        f"{LOGS}/report/evaluation_tables.log",
    conda:
        "../envs/train.yaml"
    script:
        "../scripts/evaluation_tables.py"


rule clip_animations:
    """GIFs of a few cached clips: tracked points | cluster map of the starting backbone | of the trained one."""
    input:
        shards=SHARDS,
        start=MODELS[REPORT_START],
        trained=MODELS[REPORT_TRAINED],
        code=code_inputs("scripts/clip_animations.py"),
    output:
        gifs=report(
            [f"{REPORT_DIR}/clips/clip_{i}.gif" for i in range(REPORT_CLIPS)],
            caption="../report/clip_animation.rst",
            category="4 Clips",
            subcategory="GIF files",
        ),
        gallery=report(
            f"{REPORT_DIR}/clips/clips.html",
            caption="../report/clips_gallery.rst",
            category="4 Clips",
            subcategory="animations",
        ),
    log:
        f"{LOGS}/report/clip_animations.log",
    conda:
        "../envs/train.yaml"
    params:
        start_name=REPORT_START,
        trained_name=REPORT_TRAINED,
        k=6,
        # The video segmentation protocol's resolution: the same clip-level K-means view of the features.
        input_size=CFG.evaluate.videoseg.input_size,
        seed=0,
    script:
        "../scripts/clip_animations.py"
