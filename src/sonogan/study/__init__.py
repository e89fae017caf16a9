"""The expert reader study: a study of real and synthetic images rated by experts.

``db`` (SQLAlchemy models and engines: SQLite file or PostgreSQL URL), ``create`` (sampling
the images, re-encoding them, rater tokens and orders), ``stats`` (pure statistics: realism,
binomial accuracy, Fleiss' kappa, Krippendorff's alpha), ``results`` (the admin summary, CSV
and the JSON the experiment report shows). The web app is :mod:`sonogan.serve`.
"""
