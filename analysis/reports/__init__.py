"""What people read and look at: ``eda*`` (a dataset), ``compare`` (runs and sweeps), ``importance``
(a sweep's parameter importances), ``show`` (images with their boxes), ``ablation`` (what each step of
the recipe is worth), all written through ``report.Report`` (Markdown + self-contained HTML)."""
