"""mosic: motion-guided dense self-supervised learning (MoSiC) as a fast, tested Snakemake pipeline.

Importing the package is cheap (no torch): the Snakefile imports `mosic.config` at parse time.
"""

__version__ = "0.1.0"
