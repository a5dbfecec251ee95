"""Figures and animations for the Snakemake report (``snakemake --report report.html``).

:mod:`mosic.report.figures` draws the training curves of every run and the tracking accuracy;
:mod:`mosic.report.clips` renders a few cached clips as GIFs: the tracked points next to per-clip K-means
cluster maps of the starting and the trained backbone.
"""
